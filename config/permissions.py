"""API permissions that follow the roles (SPEC "Roles")."""

from rest_framework.permissions import DjangoModelPermissions


class RolePermissions(DjangoModelPermissions):
    """Django's model permissions, with ``view`` required for reads.

    Analysts hold only ``view_*`` permissions, so they can read and export but every
    write answers ``403``; account managers hold ``add``/``change`` on the definitions.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
