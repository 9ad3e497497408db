"""The big check constraints of the tracking path's tables, made cheap to start on
PostgreSQL: the same predicates, each in a function (tracking/checks.py says why and how).
No model changes. Non-atomic: each constraint is added ``NOT VALID`` and validated in its own
step, so the rows are checked without holding postbacks out. SQLite: nothing to do."""

from django.db import migrations

from tracking import checks


def _each(apps, schema_editor, step) -> None:  # noqa: ANN001
    for label, names in checks.CHEAP.items():
        model = apps.get_model(label)
        for name in names:
            step(schema_editor, model, name)


def forwards(apps, schema_editor) -> None:  # noqa: ANN001
    _each(apps, schema_editor, checks.make_cheap)


def backwards(apps, schema_editor) -> None:  # noqa: ANN001
    _each(apps, schema_editor, checks.restore)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tracking", "0012_delivery_partitions"),
        ("offers", "0008_cap_counter_allowances"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
