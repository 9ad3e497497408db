"""Clicktrail's admin site: the role groups grant access, and Reports is on the home page.

Django's own site admits only users with *Staff status*; here membership of a role group
(SPEC "Roles", created by tracking/migrations/0002_roles.py) is enough, so an account
manager or analyst made as the README says can log in. What they see and do is still
decided by the model permissions their group holds. Installed through
``config.apps.ClicktrailAdminConfig`` (``default_site``), so ``admin.site`` is this site.
"""

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse

#: The groups whose members may use the admin without staff status (their names as the
#: roles migration creates them).
ROLE_GROUPS = ("Account managers", "Analysts")


def has_admin_access(user: Any) -> bool:
    """Active, and staff or in a role group."""
    if not (user.is_active and user.is_authenticated):
        return False
    return user.is_staff or user.groups.filter(name__in=ROLE_GROUPS).exists()


class RoleAuthenticationForm(AdminAuthenticationForm):
    """The admin login: a right password for an account without access says so."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "no_access": "This account exists, but it has no access to the admin. Ask an "
        "administrator to put it in the Analysts or Account managers group.",
    }

    def confirm_login_allowed(self, user: Any) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # inactive accounts
        if not has_admin_access(user):
            raise ValidationError(self.error_messages["no_access"], code="no_access")


class ClicktrailAdminSite(AdminSite):
    site_header = "Clicktrail"
    site_title = "Clicktrail"
    index_title = "Tracking administration"
    login_form = RoleAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return has_admin_access(request.user)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list:
        """The apps as Django lists them, with **Reports** first under Tracking, for whoever
        may view event records (the home page and the sidebar both read this list)."""
        app_list = super().get_app_list(request, app_label)
        if not request.user.has_perm("tracking.view_eventrecord"):
            return app_list
        for app in app_list:
            if app["app_label"] == "tracking":
                app["models"].insert(
                    0,
                    {
                        "model": None,
                        "name": "Reports",
                        "object_name": "Reports",
                        "perms": {"add": False, "change": False, "delete": False, "view": True},
                        "admin_url": reverse("admin:tracking_reports", current_app=self.name),
                        "add_url": None,
                        "view_only": True,
                    },
                )
        return app_list
