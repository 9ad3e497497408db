"""How the tracking path uses its database connection (tracking/sql.py): statements
prepared once per connection, and a dead connection replaced by the next hit's first
statement instead of a SELECT 1 before every request."""

import psycopg
import pytest
from django.db import close_old_connections, connection

from tests.factories import ClickFactory
from tests.markers import requires_postgresql
from tests.servers import fire_at_once, postgres_url

pytestmark = requires_postgresql


def params(click) -> dict[str, str]:  # noqa: ANN001
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }


def postback(client, click) -> int:  # noqa: ANN001
    return client.get("/postback", params(click)).status_code


@pytest.mark.django_db
def test_the_hit_statements_are_prepared_on_the_connection(client):
    first, second = ClickFactory(), ClickFactory()
    postback(client, first)
    postback(client, second)

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    assert any("tracking_click c ON c.transaction_id" in sql for sql in prepared)
    assert any('INSERT INTO "tracking_postbacklog"' in sql for sql in prepared)


@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_between_requests_costs_no_failed_postback(client):
    first, second = ClickFactory(), ClickFactory()
    assert postback(client, first) == 200
    pid = connection.connection.info.backend_pid

    # As a restarted server or a dropped network would: the backend goes away between two
    # requests, and the persistent connection does not know it yet.
    with psycopg.connect(postgres_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    # What the real handler does when the next request starts (Django's test client skips
    # it): the persistent connection is kept, to be checked by its first use.
    close_old_connections()

    assert postback(client, second) == 200
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db(transaction=True)
def test_servers_whose_connections_were_killed_answer_every_postback(servers):
    clicks = [ClickFactory() for _ in range(24)]
    warm = fire_at_once([servers[n % 2] for n in range(8)], [params(click) for click in clicks[:8]])
    assert {r.status_code for r in warm} == {200}

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'clicktrail'"
        )
        assert cursor.fetchone()[0] >= 2

    answers = fire_at_once(
        [servers[n % 2] for n in range(16)], [params(click) for click in clicks[8:]]
    )
    assert [r.status_code for r in answers] == [200] * 16
