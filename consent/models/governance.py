from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .schools import Purpose


class DpiaSignOff(models.Model):
    """The school's DPO signed off the data protection impact assessment of a purpose
    (UK GDPR Art 35, the DPO consulted). Append-only: a new document needs a new sign-off.

    A purpose is enabled only while its `dpia_reference` names a signed-off document
    (`consent.services.purpose_update`)."""

    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="dpia_sign_offs")
    document_reference = models.CharField(_("DPIA document reference"), max_length=200)
    # PROTECT: the record says who signed; the account is deactivated, not deleted.
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="dpia_sign_offs"
    )
    signed_at = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-signed_at", "-pk"]
        verbose_name = "DPIA sign-off"

    def __str__(self) -> str:
        return f"{self.document_reference} ({self.signed_at:%Y-%m-%d})"
