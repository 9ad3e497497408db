"""Migration offers/0006_offer_rules on a database that already holds offers: they keep no
conversion window (their clicks' conversions keep counting); offers made afterwards get 90
days."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from offers.tokens import generate_postback_token, token_digest
from tests.factories import OfferFactory

BEFORE = [("offers", "0002_definitions_version")]


def migrate(targets):  # noqa: ANN001, ANN201
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_offers_keep_no_window_and_new_ones_get_90_days():
    apps = migrate(BEFORE)
    try:
        token = generate_postback_token()
        advertiser = apps.get_model("offers", "Advertiser").objects.create(
            name="Before rules", postback_token=token, postback_token_digest=token_digest(token)
        )
        existing = apps.get_model("offers", "Offer").objects.create(
            name="Old offer", advertiser=advertiser, destination_url="https://x.example/"
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    from offers.models import Advertiser, Offer  # noqa: PLC0415

    old = Offer.objects.get(pk=existing.pk)
    assert (old.conversion_window_days, old.min_conversion_seconds, old.fallback_url) == (
        None,
        0,
        "",
    )
    assert Advertiser.objects.get(pk=advertiser.pk).allowed_ips == []
    assert OfferFactory().conversion_window_days == 90
