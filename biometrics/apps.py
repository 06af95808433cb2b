from django.apps import AppConfig


class BiometricsConfig(AppConfig):
    name = "biometrics"
    verbose_name = "Biometric data"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects to consent's signals
