from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A new cap's counter starts from the records tracking holds (offers cannot count
        # them: dependencies point from tracking to offers).
        from offers.caps import on_cap_created  # noqa: PLC0415
        from tracking.caps import counter_start  # noqa: PLC0415

        on_cap_created(counter_start)
