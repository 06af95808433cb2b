from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Schools and consent"

    def ready(self) -> None:
        from . import checks  # noqa: F401, PLC0415 - registers the deployment checks
