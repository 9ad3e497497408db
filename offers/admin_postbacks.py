"""The publisher page's postbacks inline (SPEC "Publisher postbacks (outbound)").

Each saved row has a **Test** button: it posts to the delivery module's test view
(tracking/admin_deliveries.py, by URL name: offers does not import tracking), which sends
one delivery for a test record and shows the publisher's answer.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from offers.models import PublisherPostback
from offers.outbound_urls import macro_help


class PublisherPostbackForm(forms.ModelForm):
    class Meta:
        model = PublisherPostback
        fields = ["offer", "trigger", "event", "url", "enabled"]
        widgets = {"url": forms.TextInput(attrs={"size": 80, "class": "vLargeTextField"})}
        help_texts = {
            "url": "GET, filled when a delivery is created. Macros (path and query only): "
            + macro_help()
            + ". Revenue and the advertiser's references are never sent to publishers.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # Enabled again by hand: the auto-disable flag goes.
        if data.get("enabled") and self.instance.pk and not self.instance.enabled:
            self.instance.disabled_reason = ""
            self.instance.disabled_at = None
        return data


class PublisherPostbackInline(admin.StackedInline):
    model = PublisherPostback
    form = PublisherPostbackForm
    extra = 0
    autocomplete_fields = ["offer", "event"]
    readonly_fields = ["state", "test"]
    fields = ["offer", "trigger", "event", "url", "enabled", "state", "test"]
    verbose_name = "publisher postback"

    @admin.display(description="state")
    def state(self, postback: PublisherPostback) -> str:
        if postback.pk is None:
            return "—"
        if not postback.enabled and postback.disabled_reason:
            return format_html(
                '<strong class="ct-postback-disabled">Disabled:</strong> {}',
                postback.disabled_reason,
            )
        return "Enabled" if postback.enabled else "Disabled"

    @admin.display(description="test")
    def test(self, postback: PublisherPostback) -> str:
        if postback.pk is None:
            return "Save first, then test."
        return format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post" '
            'formnovalidate name="_test_postback">Test</button> '
            '<span class="help">Sends one delivery for a test record now and shows the '
            "answer (nothing is recorded).</span>",
            reverse("tracking-publisher-postback-test", args=[postback.pk]),
        )
