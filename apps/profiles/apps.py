"""App config for profiles, identities, merges and groups."""

from django.apps import AppConfig
from django.core import checks


class ProfilesConfig(AppConfig):
    name = "apps.profiles"
    verbose_name = "Profiles and identity"

    def ready(self) -> None:
        from apps.profiles.hooks import check_hooks_registered

        checks.register(check_hooks_registered)
