"""The two roles of SPEC "Roles" as groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DEFINITIONS = [("offers", "advertiser"), ("offers", "publisher"), ("offers", "offer"), ("offers", "event")]
RECORDS = [
    ("tracking", "click"),
    ("tracking", "conversion"),
    ("tracking", "eventrecord"),
    ("tracking", "postbacklog"),
]

ROLES = {
    # Manage the definitions (events may also be deleted while they have no records);
    # view everything. Nobody edits a recorded conversion or event record.
    "Account managers": [
        *[(app, f"{action}_{model}") for app, model in DEFINITIONS for action in ("add", "change", "view")],
        ("offers", "delete_event"),
        *[(app, f"view_{model}") for app, model in RECORDS],
    ],
    # View and export only.
    "Analysts": [(app, f"view_{model}") for app, model in DEFINITIONS + RECORDS],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in codenames
        ]
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("offers", "0001_initial"),
        ("tracking", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
