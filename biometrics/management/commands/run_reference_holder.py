"""Run the reference holder as its own process, configured from the portal's settings.

The holder itself (biometrics/reference_holder) imports nothing from Django; this command only
hands it the address, database file and shared secret the portal is configured with.
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from biometrics.reference_holder import serve


class Command(BaseCommand):
    help = "Run the reference holder (holder protocol over HTTP, own SQLite store)."

    def add_arguments(self, parser):
        url = urlsplit(settings.REFERENCE_HOLDER_URL)
        parser.add_argument("--host", default=url.hostname or "127.0.0.1")
        parser.add_argument("--port", type=int, default=url.port or 8765)
        parser.add_argument("--db", default=str(settings.VAR_DIR / "reference-holder.sqlite3"))
        parser.add_argument("--fail-first", type=int, default=0)

    def handle(self, *args, host: str, port: int, db: str, fail_first: int, **options):
        if not settings.REFERENCE_HOLDER_SECRET:
            raise CommandError(
                "Set REFERENCE_HOLDER_SECRET (or REFERENCE_HOLDER_SECRET_FILE) for the holder."
            )
        logging.getLogger("biometrics.reference_holder").setLevel(logging.INFO)
        serve(host, port, db, settings.REFERENCE_HOLDER_SECRET, fail_first=fail_first)
