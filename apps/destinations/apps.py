"""App config for destinations: encrypted resources (credentials) and the destinations that
deliver profiles and events to other systems through an outbox."""

from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "apps.destinations"
    verbose_name = "Destinations"
