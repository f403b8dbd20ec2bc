"""App config for profiles, identities, merges and groups."""

from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "apps.profiles"
    verbose_name = "Profiles and identity"
