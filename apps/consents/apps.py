"""App config for consents: consent types, a profile's consents, data compliance rules and
privacy requests (export, erase, suppress). It sits below events: ingest asks it, through a
typed hook, whether an event may be stored and what to strip from it."""

from django.apps import AppConfig


class ConsentsConfig(AppConfig):
    name = "apps.consents"
    verbose_name = "Consents and privacy"

    def ready(self) -> None:
        from apps.consents.privacy.setup import privacy_ready

        privacy_ready()
