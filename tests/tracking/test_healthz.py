from pathlib import Path

import pytest

from tests.unreachable import get_with_database_down

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_answers_200_when_the_database_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_answers_503_when_the_database_is_unreachable():
    answer = get_with_database_down("/healthz")

    assert (answer["status"], answer["body"]) == (
        503,
        {"status": "unavailable", "database": "down"},
    )
