"""The admin site itself: branding, its static files, the login, and the roles' reach."""

import json

import pytest
from django.core.management import call_command
from django.templatetags.static import static

pytestmark = pytest.mark.django_db


def test_admin_is_branded_clicktrail(manager_admin):
    response = manager_admin.get("/admin/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>Tracking administration | Clicktrail</title>" in page
    assert "ct-brand" in page
    assert static("offers/admin.css") in page
    assert static("offers/admin.js") in page


def test_the_admin_needs_a_login(client):
    response = client.get("/admin/offers/offer/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("path", ["offers/admin.css", "offers/admin.js", "admin/css/base.css"])
def test_the_admin_static_files_are_served_by_the_app(client, path):
    response = client.get(static(path))

    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_the_admin_static_files_survive_collectstatic_with_the_production_storage(
    settings, tmp_path
):
    # Production (DEBUG=False under gunicorn) serves what collectstatic wrote, by the hashed
    # names of the manifest, through WhiteNoise; a file that breaks post-processing breaks
    # `make run` and every deploy.
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

    call_command("collectstatic", "--no-input", verbosity=0)

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    for path in ["offers/admin.css", "offers/admin.js", "admin/css/base.css", "admin/js/core.js"]:
        hashed = tmp_path / manifest[path]
        assert hashed.exists(), path
        assert hashed.with_name(hashed.name + ".gz").exists(), path
    assert static("offers/admin.css") == f"/static/{manifest['offers/admin.css']}"


def test_analyst_sees_every_definition_list_but_no_add_button(analyst_admin):
    for model in ["advertiser", "publisher", "offer", "event"]:
        response = analyst_admin.get(f"/admin/offers/{model}/")
        assert response.status_code == 200, model
        assert f"/admin/offers/{model}/add/" not in response.content.decode(), model


def test_account_manager_cannot_write_recorded_conversions_or_event_records(manager_admin):
    for model in ["conversion", "eventrecord", "click", "postbacklog"]:
        assert manager_admin.get(f"/admin/tracking/{model}/add/").status_code == 403, model
