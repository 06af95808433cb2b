from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from consent.actors import Actor
from consent.models import School, StaffMembership
from consent.services import ConsentError, staff_member_add, staff_set_password_token

ROLES = {
    "school_admin": StaffMembership.Role.ADMIN,
    "enrolment_operator": StaffMembership.Role.ENROLMENT,
    "dpo": StaffMembership.Role.DPO,
}


class Command(BaseCommand):
    help = (
        "Give a person staff access to a school in a role (making their staff account if "
        "needed); prints a one-time set-password link on its last line. Audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="the staff member's address (their username)")
        parser.add_argument("--school", required=True, help="school slug")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))

    def handle(self, *args, email: str, school: str, role: str, **options):
        found = School.objects.filter(slug=school).first()
        if found is None:
            raise CommandError(f"No school has the slug {school!r}")
        actor = Actor.system("create_staff")
        try:
            user, created = staff_member_add(
                email=email, school=found, role=ROLES[role], actor=actor
            )
            uid, token = staff_set_password_token(user=user, actor=actor)
        except ConsentError as exc:
            raise CommandError(exc.detail) from exc
        path = reverse("admin:guardian-set-password", args=[uid, token])
        hours = settings.PASSWORD_RESET_TIMEOUT // 3600
        self.stdout.write(
            f"{'Created' if created else 'Updated'} staff account {user.get_username()}: "
            f"{role.replace('_', ' ')} at {found.slug}."
        )
        self.stdout.write(
            f"Send them this link to set their password (one use, valid {hours} hours):"
        )
        self.stdout.write(settings.SITE_URL.rstrip("/") + path)
