from django.core.management.base import BaseCommand, CommandError

from consent.models import Guardian
from portal.auth import magic_link_issue


class Command(BaseCommand):
    help = "Print a one-time sign-in link (15 minutes) for a guardian."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--token", action="store_true", help="print only the token")
        parser.add_argument("--next", default="", help="local path to open after signing in")

    def handle(self, *args, email: str, token: bool, next: str, **options):
        guardian = Guardian.objects.filter(email=email.strip().lower()).first()
        if guardian is None:
            raise CommandError(f"No guardian has the address {email}")
        link = magic_link_issue(guardian=guardian, next_url=next)
        self.stdout.write(link.token if token else link.url)
