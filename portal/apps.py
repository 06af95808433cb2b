from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Parent portal"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects to the apps' signals
        from .staff_groups import staff_groups_sync  # noqa: PLC0415 - models are ready now

        # After auth has created the permissions (post_migrate runs per app, portal is last).
        post_migrate.connect(staff_groups_sync, sender=self, dispatch_uid="guardian_staff_groups")
