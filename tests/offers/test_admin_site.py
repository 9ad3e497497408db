"""The admin site itself: branding, its static files, the login, and the roles' reach."""

import json

import pytest
from django.core.management import call_command
from django.templatetags.static import static

from tests.factories import UserFactory

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


PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's


def log_in_through_the_form(client, username: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    return client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, follow=True
    )


@pytest.mark.parametrize("group", ["Analysts", "Account managers"])
def test_a_role_group_is_enough_to_log_in_without_staff_status(client, group):
    user = UserFactory(is_staff=False, groups=[group])

    response = log_in_through_the_form(client, user.username)

    assert response.redirect_chain[-1][0] == "/admin/"
    assert response.status_code == 200
    assert "Site administration" not in response.content.decode()
    assert client.get("/admin/tracking/eventrecord/").status_code == 200


def test_a_valid_account_without_a_role_is_told_it_has_no_access(client):
    user = UserFactory(is_staff=False)

    response = log_in_through_the_form(client, user.username)

    page = response.content.decode()
    assert "has no access to the admin" in page
    assert "Analysts or Account managers" in page
    assert "correct username and password" not in page
    assert client.get("/admin/").status_code == 302


def test_a_wrong_password_is_still_a_wrong_password(client):
    user = UserFactory(is_staff=False, groups=["Analysts"])

    response = log_in_through_the_form(client, user.username, "not-the-password")

    page = response.content.decode()
    assert "Please enter the correct username and password" in page
    assert "has no access" not in page


def test_an_inactive_member_of_a_role_cannot_log_in(client):
    user = UserFactory(is_staff=False, is_active=False, groups=["Analysts"])

    response = log_in_through_the_form(client, user.username)

    assert response.redirect_chain == []
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("who", ["analyst_admin", "manager_admin", "superuser_admin"])
def test_reports_are_on_the_home_page_and_in_the_sidebar(request, who):
    client = request.getfixturevalue(who)

    home = client.get("/admin/").content.decode()
    a_list = client.get("/admin/tracking/conversion/").content.decode()

    assert 'href="/admin/tracking/eventrecord/reports/"' in home
    # The sidebar (nav_sidebar) of any admin page lists it as well.
    sidebar = a_list.split('id="nav-sidebar"')[1].split("</nav>")[0]
    assert 'href="/admin/tracking/eventrecord/reports/">Reports</a>' in sidebar


def test_reports_are_not_offered_to_who_cannot_view_records(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)

    assert "/admin/tracking/eventrecord/reports/" not in client.get("/admin/").content.decode()


def test_on_the_reports_page_only_reports_is_current_in_the_sidebar(analyst_admin):
    page = analyst_admin.get("/admin/tracking/eventrecord/reports/").content.decode()

    sidebar = page.split('id="nav-sidebar"')[1].split("</nav>")[0]
    assert sidebar.count("current-model") == 1
    assert 'class="model-reports current-model"' in sidebar
    lists = analyst_admin.get("/admin/tracking/eventrecord/").content.decode()
    assert 'class="model-eventrecord current-model"' in lists


def test_the_user_page_says_a_role_group_is_enough(superuser_admin):
    user = UserFactory(is_staff=False)

    page = superuser_admin.get(f"/admin/auth/user/{user.pk}/change/").content.decode()

    assert "data-role-note" in page
    assert "<em>Staff status</em> is not needed" in page
