from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_save


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Schools and consent"

    def ready(self) -> None:
        # Imported once the models are loaded: the deployment checks register themselves, and
        # `accounts` (the wall between guardian and staff accounts) imports models.
        from . import accounts, checks  # noqa: F401, PLC0415

        pre_save.connect(
            accounts.user_pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="guardian_user"
        )
        pre_save.connect(
            accounts.guardian_pre_save, sender="consent.Guardian", dispatch_uid="guardian_account"
        )
        pre_save.connect(
            accounts.membership_pre_save,
            sender="consent.StaffMembership",
            dispatch_uid="guardian_membership",
        )
