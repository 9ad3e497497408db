from django.contrib.admin.apps import AdminConfig


class ClicktrailAdminConfig(AdminConfig):
    """``django.contrib.admin`` with Clicktrail's site (config/admin.py) as ``admin.site``."""

    default_site = "config.admin.ClicktrailAdminSite"
