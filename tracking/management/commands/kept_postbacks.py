"""``manage.py kept_postbacks``: judge early events whose conversion came, close those whose
time passed (``no_conversion``) or whose event was deleted (``unknown_event``). Safe to run
from cron at any interval, on several machines at once (docs/postbacks.md "Early
events")."""

from django.core.management.base import BaseCommand

from tracking.kept import sweep


class Command(BaseCommand):
    help = "Judge or close kept early-event postbacks (run it every minute from cron)."

    def handle(self, *args: object, **options: object) -> None:
        done = sweep()
        self.stdout.write(
            f"judged {done['judged']}, closed {done['no_conversion']} as no_conversion and "
            f"{done['unknown_event']} as unknown_event"
        )
