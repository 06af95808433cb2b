from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from consent.actors import Actor
from consent.services import school_create


class Command(BaseCommand):
    help = "Create a school (then give it staff with create_staff); audited."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True, help="its address: /schools/<slug>/")
        parser.add_argument("--name", required=True)
        parser.add_argument("--dpo-email", default="", help="its data protection officer")

    def handle(self, *args, slug: str, name: str, dpo_email: str, **options):
        try:
            school = school_create(
                slug=slug, name=name, dpo_email=dpo_email, actor=Actor.system("create_school")
            )
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())
            raise CommandError(problems) from exc
        self.stdout.write(f"Created school {school.slug} ({school.name}), id {school.pk}")
