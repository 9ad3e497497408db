"""Cap counters without an index of their own on ``cap_id``.

``capcounter_one_per_shard`` (cap, period start, shard) starts with the cap, so it serves
the foreign key's lookups too; and an UPDATE opens every index of its table, so each
postback that takes a slot paid for the redundant one (docs/benchmarks.md, session 21).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offers", "0009_cap_counter_fillfactor"),
    ]

    operations = [
        migrations.AlterField(
            model_name="capcounter",
            name="cap",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="counters",
                to="offers.offercap",
            ),
        ),
    ]
