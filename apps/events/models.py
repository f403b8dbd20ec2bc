"""Events (immutable facts, also the processing outbox) and the sessions they belong to."""

import uuid

from django.db import models
from django.db.models import Q

from apps.sources.models import EventSource

# What a session keeps of the event it starts with (how the visitor came, on what): set from
# that event by sessions._entry_details, shown by the API, readable by filters (event.session.*).
SESSION_ENTRY_FIELDS = (
    "referrer",
    "referring_domain",
    "landing_page",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "timezone",
    "locale",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device_type",
    "device_brand",
    "device_model",
)


class Session(models.Model):
    """A visit: consecutive events of one person from one source, with the context it began in."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(EventSource, on_delete=models.CASCADE, related_name="sessions")
    distinct_id = models.CharField(max_length=200)
    # The client-supplied session id, or str(id) for sessions the server started.
    key = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    event_count = models.PositiveIntegerField(default=0)
    # Started by a personless event (Event.personless): a visit that belongs to no profile.
    personless = models.BooleanField(default=False, editable=False)

    referrer = models.TextField(blank=True)
    referring_domain = models.CharField(max_length=255, blank=True)
    landing_page = models.TextField(blank=True)
    utm_source = models.CharField(max_length=255, blank=True)
    utm_medium = models.CharField(max_length=255, blank=True)
    utm_campaign = models.CharField(max_length=255, blank=True)
    utm_term = models.CharField(max_length=255, blank=True)
    utm_content = models.CharField(max_length=255, blank=True)
    browser = models.CharField(max_length=100, blank=True)
    browser_version = models.CharField(max_length=50, blank=True)
    os = models.CharField(max_length=100, blank=True)
    os_version = models.CharField(max_length=50, blank=True)
    device_type = models.CharField(max_length=20, blank=True)
    device_brand = models.CharField(max_length=100, blank=True)
    device_model = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    locale = models.CharField(max_length=35, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="events_session_source_key_uniq")
        ]
        indexes = [
            models.Index(
                fields=["source", "distinct_id", "-last_event_at"], name="events_session_person_idx"
            ),
            models.Index(fields=["-started_at"], name="events_session_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.distinct_id} @ {self.started_at:%Y-%m-%d %H:%M}"


class Event(models.Model):
    """One tracked event as it was sent. Rows are never rewritten except for processing state."""

    # No foreign-key constraint in the database (PROTECT is enforced by Django): checking it
    # ran a trigger per inserted row and took a KEY SHARE lock on the source's row in every
    # ingest transaction, so concurrent inserts for one source shared that lock (multixacts).
    # Rows come only from the ingest path, which authenticated the source.
    source = models.ForeignKey(
        EventSource,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    message_id = models.CharField(max_length=200)
    event_name = models.CharField(max_length=255)
    distinct_id = models.CharField(max_length=200)
    category = models.CharField(max_length=64, default="custom")
    # Emitted by the platform itself (segment_entered, a workflow's emit_event...), set only by
    # events_emit: not the person's activity (no last_seen, counters, sessions, `performed
    # any`), though rules route on it and filters match it by name.
    platform = models.BooleanField(default=False, editable=False)
    # Sent without a profile (the source's setting or the event's own flag): stored, in
    # sessions and routed by rules, but it creates or touches no profile, identity or counter,
    # and never joins a person, even after an identify of its distinct_id.
    personless = models.BooleanField(default=False, editable=False)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict)
    context = models.JSONField(default=dict)
    # The session id the client sent, if any; `session` is assigned by processing.
    session_key = models.CharField(max_length=200, blank=True, default="")
    session = models.ForeignKey(
        Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Dedupe lives in the database: retries and racing requests store a message once.
            models.UniqueConstraint(
                fields=["source", "message_id"], name="events_event_source_message_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["distinct_id", "-timestamp"], name="events_event_person_idx"),
            models.Index(fields=["event_name", "-timestamp"], name="events_event_name_idx"),
            models.Index(fields=["-timestamp"], name="events_event_time_idx"),
            # The outbox: small, since processed rows leave it.
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="events_event_unprocessed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} by {self.distinct_id}"
