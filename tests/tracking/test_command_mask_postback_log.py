"""``manage.py mask_postback_log``: rows logged before value masking lose their tokens."""

import io

import pytest
from django.core import serializers
from django.core.management import call_command

from offers.tokens import mask_token
from tests.factories import AdvertiserFactory, PostbackLogFactory
from tracking.models import PostbackLog

pytestmark = pytest.mark.django_db


def test_tokens_stored_whole_by_an_older_version_are_masked_and_the_rest_is_kept():
    token = AdvertiserFactory().postback_token
    leaky = [
        PostbackLogFactory(params={"Secure": token, "transaction_id": "a" * 32}),
        PostbackLogFactory(transaction_id=token, user_agent=f"ua {token}"),
        PostbackLogFactory(params={token: "1"}, message=f"no event named “{token}”"),
    ]
    clean = PostbackLogFactory(params={"adv_sub": "order-1"}, user_agent="AppsFlyer/1.0")
    out = io.StringIO()

    call_command("mask_postback_log", "--batch-size", "2", stdout=out)

    assert "Masked tokens in 3 postback log rows." in out.getvalue()
    dumped = serializers.serialize("json", PostbackLog.objects.all())
    assert token not in dumped
    first = PostbackLog.objects.get(pk=leaky[0].pk)
    assert first.params == {"Secure": mask_token(token), "transaction_id": "a" * 32}
    assert PostbackLog.objects.get(pk=leaky[1].pk).user_agent == f"ua {mask_token(token)}"
    kept = PostbackLog.objects.get(pk=clean.pk)
    assert (kept.params, kept.user_agent) == ({"adv_sub": "order-1"}, "AppsFlyer/1.0")
