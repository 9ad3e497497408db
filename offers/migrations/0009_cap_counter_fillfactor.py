"""Cap counters' pages kept mostly empty (PostgreSQL only; no model changes).

Every record of a capped offer updates one shard row of each of its caps, so a period's
sixteen rows take thousands of updates a minute. With ``fillfactor = 10`` a page holds
about ten of them and keeps nine tenths free for their new versions: each update stays
on its page (HOT) and the page's dead versions are pruned in place, instead of the rows
sharing one full page that every capped postback writes (docs/scaling.md). The rows of
periods made from now on are laid out so; earlier ones keep their pages.
"""

from django.db import migrations


def forwards(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE offers_capcounter SET (fillfactor = 10)")


def backwards(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE offers_capcounter RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("offers", "0008_cap_counter_allowances")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
