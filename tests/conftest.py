from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory, account_manager, analyst
from tests.servers import gunicorn, postgres_url


def token_client(user) -> APIClient:  # noqa: ANN001
    """An API client that authenticates the real way: ``Authorization: Token <key>``."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def manager_client(db) -> APIClient:  # noqa: ANN001
    return token_client(account_manager())


@pytest.fixture
def analyst_client(db) -> APIClient:  # noqa: ANN001
    return token_client(analyst())


@pytest.fixture
def superuser_client(db) -> APIClient:  # noqa: ANN001
    return token_client(UserFactory(is_superuser=True))


def admin_client_for(user) -> Client:  # noqa: ANN001
    """A browser-like client logged in to the admin the real way (username and password)."""
    client = Client()
    assert client.login(username=user.username, password="correct-horse-battery")
    return client


@pytest.fixture
def manager_admin(db) -> Client:  # noqa: ANN001
    return admin_client_for(account_manager())


@pytest.fixture
def analyst_admin(db) -> Client:  # noqa: ANN001
    return admin_client_for(analyst())


@pytest.fixture
def superuser_admin(db) -> Client:  # noqa: ANN001
    return admin_client_for(UserFactory(is_superuser=True))


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gunicorn") / "servers.log"


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, server_log) -> Iterator[list[str]]:  # noqa: ANN001
    """Two gunicorn servers on the test database, like two application hosts."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://…")
    url = postgres_url()
    with gunicorn(url, server_log) as first, gunicorn(url, server_log) as second:
        yield [first, second]
