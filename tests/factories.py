"""factory-boy factories for every model."""

import importlib
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from factory.django import DjangoModelFactory

from offers.models import Advertiser, Event, MoneyType, Offer, Publisher
from offers.tokens import generate_postback_token, token_digest
from tracking.models import Click, Conversion, EventRecord, PostbackLog, Reason
from tracking.services import generate_transaction_id


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def groups(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            ensure_roles()
            self.groups.set(Group.objects.filter(name__in=extracted))
        if create:
            self.save()


def ensure_roles() -> None:
    """The two role groups, as their data migration (tracking/migrations/0002_roles.py) made them.

    Transactional tests empty every table when they end, groups included; Django recreates
    the permissions on that flush, but not the groups. Users made with ``groups=[…]`` call
    this, so a role test never depends on which test ran before it.
    """
    roles = {
        name: list(codes)
        for name, codes in importlib.import_module("tracking.migrations.0002_roles").ROLES.items()
    }
    # Later migrations that add to a role (0006_record_status: managers change statuses).
    for name, codes in importlib.import_module(
        "tracking.migrations.0006_record_status"
    ).STATUS_CHANGERS.items():
        roles[name] += codes
    for name, codenames in roles.items():
        group, created = Group.objects.get_or_create(name=name)
        if created or not group.permissions.exists():
            group.permissions.set(
                [
                    Permission.objects.get(content_type__app_label=app, codename=codename)
                    for app, codename in codenames
                ]
            )


def account_manager(**kwargs: object):  # noqa: ANN201
    return UserFactory(groups=["Account managers"], **kwargs)


def analyst(**kwargs: object):  # noqa: ANN201
    return UserFactory(groups=["Analysts"], **kwargs)


class AdvertiserFactory(DjangoModelFactory):
    class Meta:
        model = Advertiser

    name = factory.Sequence(lambda n: f"Advertiser {n}")
    postback_token = factory.LazyFunction(generate_postback_token)
    postback_token_digest = factory.LazyAttribute(lambda a: token_digest(a.postback_token))


class PublisherFactory(DjangoModelFactory):
    class Meta:
        model = Publisher

    name = factory.Sequence(lambda n: f"Publisher {n}")


class OfferFactory(DjangoModelFactory):
    class Meta:
        model = Offer

    name = factory.Faker("catch_phrase")
    advertiser = factory.SubFactory(AdvertiserFactory)
    destination_url = "https://shop.example.com/landing?click={transaction_id}&pub={aff_id}"
    status = Offer.Status.ACTIVE
    currency = "USD"
    revenue_type = MoneyType.CPA
    revenue_value = Decimal("5.00")
    payout_type = MoneyType.CPA
    payout_value = Decimal("3.00")
    parameters = factory.LazyFunction(dict)


class EventFactory(DjangoModelFactory):
    class Meta:
        model = Event

    offer = factory.SubFactory(OfferFactory)
    name = factory.Sequence(lambda n: f"event_{n}")
    revenue_type = MoneyType.CPA
    revenue_value = Decimal("2.00")
    payout_type = MoneyType.CPA
    payout_value = Decimal("1.00")
    allow_multiple = False
    parameters = factory.LazyFunction(dict)


class ClickFactory(DjangoModelFactory):
    class Meta:
        model = Click

    transaction_id = factory.LazyFunction(generate_transaction_id)
    offer = factory.SubFactory(OfferFactory)
    publisher = factory.SubFactory(PublisherFactory)
    ip = "198.51.100.7"
    user_agent = "Mozilla/5.0 (test)"


class ConversionFactory(DjangoModelFactory):
    class Meta:
        model = Conversion

    click = factory.SubFactory(ClickFactory)
    offer = factory.SelfAttribute("click.offer")
    publisher = factory.SelfAttribute("click.publisher")
    revenue = Decimal("5.00")
    payout = Decimal("3.00")
    currency = "USD"


class EventRecordFactory(DjangoModelFactory):
    class Meta:
        model = EventRecord

    conversion = factory.SubFactory(ConversionFactory)
    click = factory.SelfAttribute("conversion.click")
    offer = factory.SelfAttribute("conversion.offer")
    publisher = factory.SelfAttribute("conversion.publisher")
    event = factory.SubFactory(EventFactory, offer=factory.SelfAttribute("..offer"))
    allow_multiple = factory.SelfAttribute("event.allow_multiple")
    revenue = Decimal("2.00")
    payout = Decimal("1.00")
    currency = "USD"


class PostbackLogFactory(DjangoModelFactory):
    class Meta:
        model = PostbackLog

    method = "GET"
    params = factory.LazyFunction(dict)
    status_code = 404
    reason = Reason.UNKNOWN_TRANSACTION
    transaction_id = factory.LazyFunction(generate_transaction_id)
