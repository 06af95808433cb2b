"""Holders' HMAC secrets sealed under the key-encryption key (biometrics.kek): the plaintext
column goes, each secret is sealed into `sealed_secret` (bound to the holder's school)."""

from django.db import migrations, models

from biometrics.kek import is_sealed, kek_open, kek_seal


def _context(holder) -> str:
    return f"holder-secret:{holder.school_id}"


def seal(apps, schema_editor):
    Holder = apps.get_model("biometrics", "Holder")
    for holder in Holder.objects.all():
        if not is_sealed(holder.sealed_secret):
            holder.sealed_secret = kek_seal(holder.secret, context=_context(holder))
            holder.secret = ""
            holder.save(update_fields=["sealed_secret", "secret"])


def unseal(apps, schema_editor):
    Holder = apps.get_model("biometrics", "Holder")
    for holder in Holder.objects.all():
        holder.secret = kek_open(holder.sealed_secret, context=_context(holder))
        holder.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [("biometrics", "0002_schedules")]

    operations = [
        migrations.AddField(
            model_name="holder",
            name="sealed_secret",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="holder", name="secret", field=models.CharField(max_length=200, blank=True)
        ),
        migrations.RunPython(seal, unseal),
        migrations.RemoveField(model_name="holder", name="secret"),
    ]
