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
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from tests.factories import EventFactory, EventRecordFactory, account_manager, analyst

load_all_checks()

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


def test_every_operation_documents_its_error_answers_and_their_shape(schema_json):
    schemas = schema_json["components"]["schemas"]
    assert schemas["ErrorDetail"]["required"] == ["detail"]
    assert schemas["ValidationError"]["type"] == "object"
    for path, operations in schema_json["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403", "404"} <= codes, (method, path)
            if method in ("post", "patch"):
                assert "400" in codes, (method, path)
            if method in ("patch", "delete"):
                assert "409" in codes, (method, path)
            shape = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert shape == {"$ref": "#/components/schemas/ErrorDetail"}


def test_the_schema_says_what_the_fields_really_hold(schema_json):
    schemas = schema_json["components"]["schemas"]
    # Macros ({transaction_id}) are no URI syntax.
    assert "format" not in schemas["Offer"]["properties"]["destination_url"]
    # The log's type is "" for a request whose parameters could not be read.
    type_schema = schemas["PostbackLog"]["properties"]["type"]
    enums = [type_schema.get("enum")] + [
        schemas[ref["$ref"].rsplit("/", 1)[-1]].get("enum")
        for ref in type_schema.get("oneOf", type_schema.get("allOf", []))
        if "$ref" in ref
    ]
    assert "" in {value for enum in enums if enum for value in enum}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/offers/abc/events/", "/api/v1/offers/1.5/", "/api/v1/x/"]
)
def test_a_path_the_api_does_not_have_is_a_json_404(manager_client, path):
    response = manager_client.get(path)
    posted = manager_client.post(path, {}, format="json")

    assert response.status_code == posted.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


@pytest.mark.django_db
def test_a_date_time_with_an_offset_postgresql_refuses_is_read_in_utc(analyst_client):
    # Found by the schema fuzz: valid ISO 8601, an offset PostgreSQL takes only in UTC.
    response = analyst_client.get("/api/v1/reports/", {"since": "0386-02-06T13:50:46-18:43"})

    assert response.status_code == 200


@pytest.mark.django_db
def test_text_fields_take_only_json_strings(manager_client):
    response = manager_client.post("/api/v1/publishers/", {"name": 0}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()


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


# Writes may be refused (400) however well-formed: the rules no schema can state, an
# advertiser that must exist, a CPS percentage of at most 100, a name unique in its offer.
# Reads must accept whatever their schema allows.
FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        # The schema's own examples and generated cases (max_examples below); the coverage
        # phase alone would send about 30 boundary cases per operation and role.
        "phases": {"coverage": {"enabled": False}},
        "operations": [
            {
                "include-method": ["POST", "PATCH"],
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
                    }
                },
            }
        ],
    }
)
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", get_wsgi_application(), config=FUZZ_CONFIG
)

#: Every check schemathesis has (``--checks all``), response conformance included.
ALL_CHECKS = CHECKS.get_all()


@pytest.fixture
def role_token(request, db) -> str:  # noqa: ANN001
    user = {"account_manager": account_manager, "analyst": analyst}[request.param]()
    token, _ = Token.objects.get_or_create(user=user)
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


@pytest.fixture
def definitions(db):  # noqa: ANN001, ANN201
    """Something for the item endpoints to find: an offer with an event, and records."""
    event = EventFactory()
    EventRecordFactory(event=event, offer=event.offer)
    return event


@pytest.mark.django_db
@pytest.mark.parametrize("role_token", ["account_manager", "analyst"], indirect=True)
@schema.include(path_regex=r"^/api/v1/").parametrize()
@settings(
    max_examples=5,  # 24 operations, 2 roles: at most 240 generated requests
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_breaks_the_schema_or_the_server(
    case, role_token, definitions, wsgi_in_test_transaction
):  # noqa: ANN001
    case.call_and_validate(headers={"Authorization": f"Token {role_token}"}, checks=ALL_CHECKS)
