"""``python manage.py mask_postback_log``: mask tokens in log rows written before the log
masked them by value.

Until then only the ``secure`` parameter was masked: a token sent under another name
(``Secure=``, ``secret=``), as the ``transaction_id`` or in the user agent was stored whole.
Run once after upgrading; it reads the log in batches by ID and rewrites only the rows that
hold a current token, so it can run while the application serves.
"""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from tracking.masking import TokenMask, token_mask
from tracking.models import PostbackLog

COLUMNS = ("params", "transaction_id", "user_agent", "message")


def masked_row(row: dict[str, Any], mask: TokenMask) -> dict[str, Any]:
    """The row's text columns with every token masked (names and values of ``params``)."""
    params = row["params"] if isinstance(row["params"], dict) else {}
    return {
        "params": {mask(str(name)): mask(str(value)) for name, value in params.items()},
        "transaction_id": mask(row["transaction_id"]),
        "user_agent": mask(row["user_agent"]),
        "message": mask(row["message"]),
    }


class Command(BaseCommand):
    help = "Mask every advertiser's current postback token in the postback log's stored rows."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=2000)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        mask = token_mask(fresh=True)
        if not mask:
            self.stdout.write("No advertiser has a token: nothing to mask.")
            return
        last_id = 0
        changed = 0
        while True:
            rows = list(
                PostbackLog.objects.filter(id__gt=last_id)
                .order_by("id")
                .values("id", *COLUMNS)[:batch_size]
            )
            if not rows:
                break
            last_id = rows[-1]["id"]
            updates = []
            for row in rows:
                masked = masked_row(row, mask)
                if any(masked[column] != row[column] for column in COLUMNS):
                    updates.append(PostbackLog(id=row["id"], **masked))
            if updates:
                with transaction.atomic():
                    PostbackLog.objects.bulk_update(updates, COLUMNS)
                changed += len(updates)
        self.stdout.write(f"Masked tokens in {changed} postback log rows.")
