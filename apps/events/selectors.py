"""Reads on events and sessions."""

from django.db.models import QuerySet

from apps.events.models import Event, Session


def event_list() -> QuerySet[Event]:
    return Event.objects.select_related("session")


def session_list() -> QuerySet[Session]:
    return Session.objects.all()
