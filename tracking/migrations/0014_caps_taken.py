"""The function a one-statement postback inserts a capped record by (tracking/caps.py
``TAKEN``). PostgreSQL only; no model changes."""

from django.db import migrations

from tracking import caps


def forwards(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(caps.TAKEN_SQL, params=None)  # its '%' are PL/pgSQL's


def backwards(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {caps.TAKEN}(bigint, integer)")


class Migration(migrations.Migration):
    dependencies = [("tracking", "0013_cheap_checks")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
