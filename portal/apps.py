from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate

from .staff_groups import staff_groups_sync


def embedded_folders_create() -> None:
    """Make the folders the embedded default writes into, on every start (settings create none):
    the SQLite database files' folders (their test databases' too), the filesystem broker's
    queue, processed and control folders, and STATIC_ROOT (WhiteNoise warns when it is
    missing). Media folders are made by the storage as files are saved."""
    folders = [Path(settings.STATIC_ROOT)]
    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.sqlite3":
            names = [db["NAME"], db.get("TEST", {}).get("NAME")]
            folders += [Path(name).parent for name in names if name and name != ":memory:"]
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [
            Path(options[key])
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
        ]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Parent portal"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects to the apps' signals
        from .api import schema  # noqa: F401, PLC0415 - registers the OpenAPI security schemes
        from .exports.erasure import exports_erasure_register  # noqa: PLC0415 - models loaded

        exports_erasure_register()  # every erasure also removes the child's downloads
        embedded_folders_create()
        # After auth has created the permissions (post_migrate runs per app, portal is last).
        post_migrate.connect(staff_groups_sync, sender=self, dispatch_uid="guardian_staff_groups")
