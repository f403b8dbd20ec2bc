"""App config for events, sessions and the ingestion pipeline."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    verbose_name = "Events and sessions"
