from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from consent.actors import Actor
from consent.models import School
from portal.auth import api_key_create


class Command(BaseCommand):
    help = "Create a school-scoped API key for capture stations and integrations; prints it last."

    def add_arguments(self, parser):
        parser.add_argument("--school", required=True, help="school slug")
        parser.add_argument(
            "--scopes", required=True, help="comma-separated: roster,enrol,identify"
        )
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="the key stops working after N days"
        )

    def handle(self, *args, school: str, scopes: str, name: str, expires_days, **options):
        found = School.objects.filter(slug=school).first()
        if found is None:
            raise CommandError(f"No school has the slug {school!r}")
        try:
            key, secret = api_key_create(
                school=found,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                name=name,
                expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
                actor=Actor.system("create_api_key"),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Created key {key.prefix} for {found.slug} with scopes {','.join(key.scopes)}"
        )
        self.stdout.write("Use it as:  Authorization: Api-Key <key>   (it is shown only once)")
        self.stdout.write(secret)
