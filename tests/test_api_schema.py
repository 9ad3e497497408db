"""The OpenAPI schema, the interactive docs (offline) and a schemathesis run against them."""

import re
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from tests.factories import UserFactory

SPEC_PATHS = {
    "/api/v1/advertisers/": {"get", "post"},
    "/api/v1/advertisers/{id}/": {"get", "patch"},
    "/api/v1/publishers/": {"get", "post"},
    "/api/v1/publishers/{id}/": {"get", "patch"},
    "/api/v1/offers/": {"get", "post"},
    "/api/v1/offers/{id}/": {"get", "patch"},
    "/api/v1/offers/{offer_pk}/events/": {"get", "post"},
    "/api/v1/offers/{offer_pk}/events/{id}/": {"get", "patch", "delete"},
    "/api/v1/conversions/": {"get"},
    "/api/v1/event-records/": {"get"},
    "/api/v1/postbacks/": {"get"},
    "/api/v1/reports/": {"get"},
}


@pytest.fixture
def schema_json(client) -> dict:  # noqa: ANN001
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_every_endpoint_of_the_spec(schema_json):
    for path, methods in SPEC_PATHS.items():
        assert path in schema_json["paths"], path
        assert methods <= set(schema_json["paths"][path]), path
    assert {"tokenAuth", "cookieAuth"} <= set(schema_json["components"]["securitySchemes"])


def test_the_schema_documents_the_report_parameters_and_rows(schema_json):
    operation = schema_json["paths"]["/api/v1/reports/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"group_by", "status", "since", "until", "offer"}
    assert set(parameters["group_by"]["schema"]["items"]["enum"]) == {
        "day",
        "offer",
        "event",
        "publisher",
        "status",
    }
    assert parameters["group_by"]["explode"] is False
    row = schema_json["components"]["schemas"]["ReportRow"]
    assert {"currency", "conversions", "events", "revenue", "payout", "profit"} <= set(
        row["required"]
    )
    assert {"day", "offer", "event", "publisher", "status"} <= set(row["properties"])


def test_the_list_endpoints_document_their_filters(schema_json):
    def names(path: str) -> set[str]:
        return {p["name"] for p in schema_json["paths"][path]["get"].get("parameters", [])}

    filters = {"offer", "advertiser", "publisher", "transaction_id", "status", "since", "until"}
    assert filters | {"page"} <= names("/api/v1/conversions/")
    assert filters | {"event", "adv_sub", "page"} <= names("/api/v1/event-records/")
    assert {"reason", "transaction_id", "since", "until", "page"} <= names("/api/v1/postbacks/")


def test_the_interactive_docs_load_every_asset_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert any("swagger-ui-bundle" in asset for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/"), f"{asset} would need the internet"
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        b"".join(fetched.streaming_content) if fetched.streaming else fetched.content
    assert "/api/schema/" in html


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def superuser_token(db) -> str:  # noqa: ANN001
    token, _ = Token.objects.get_or_create(user=UserFactory(is_superuser=True))
    return token.key


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    """Requests through the WSGI handler would close the database connection when they end
    (and with it the test's transaction); Django's own test client disconnects this too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.include(path_regex=r"^/api/v1/").parametrize()
@settings(
    max_examples=10,  # about 240 requests over the 24 operations
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_makes_a_server_error(case, superuser_token, wsgi_in_test_transaction):  # noqa: ANN001, E501
    case.call_and_validate(
        headers={"Authorization": f"Token {superuser_token}"},
        checks=[not_a_server_error],
    )
