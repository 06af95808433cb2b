from django.apps import AppConfig


class BiometricsConfig(AppConfig):
    name = "biometrics"
    verbose_name = "Biometric data"

    def ready(self) -> None:
        from consent import receipts

        from . import receivers  # connects consent's signals

        receipts.storage_locations_hook = receivers.holder_names
