"""Writes on consents: record decisions (every channel goes through `consent_set`), revoke
expired grants, and keep the survivor's most recent decisions when profiles merge."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.consents.models import ConsentChange, ConsentChannel, ConsentType, ProfileConsent
from apps.events.services import events_emit
from apps.profiles import hooks as profile_hooks
from apps.profiles.locks import person_locks_hold
from apps.profiles.models import Identity, IdentityKind, Profile, ProfileMerge
from apps.profiles.services import identities_resolve
from apps.sources.models import EventSource
from cdp.errors import DomainError

logger = logging.getLogger(__name__)

CONSENT_GRANTED = "consent_granted"
CONSENT_REVOKED = "consent_revoked"
CONSENT_EVENTS = frozenset({CONSENT_GRANTED, CONSENT_REVOKED})
MAX_DECISIONS = 100


class ConsentError(DomainError):
    """A consent decision that can't be recorded (unknown type, a refused revocation)."""


@dataclass(slots=True)
class ConsentResult:
    profile: Profile | None
    changed: list[str] = field(default_factory=list)  # the keys whose state changed
    unchanged: list[str] = field(default_factory=list)


def consent_decisions_check(
    decisions: Mapping[str, bool], *, types: Mapping[str, ConsentType], field_name: str
) -> None:
    """Refuse, before anything is written, decisions on unknown or disabled types."""
    if not decisions:
        raise ConsentError("No consent decision: send at least one", field=field_name)
    if len(decisions) > MAX_DECISIONS:
        raise ConsentError(
            f"At most {MAX_DECISIONS} decisions in one call", field=field_name, code="too_many"
        )
    for key in decisions:
        if key not in types:
            raise ConsentError(
                f"Unknown consent type {key!r}: create it in the admin (Consent types) or use "
                f"one of {', '.join(sorted(types)) or 'none defined yet'}",
                field=f"{field_name}.{key}",
                code="unknown_consent_type",
            )


def consents_record(
    *,
    distinct_id: str,
    decisions: Mapping[str, bool],
    channel: str,
    source: EventSource | None = None,
    at: datetime | None = None,
    expires_at: datetime | None = None,
    actor: str = "",
    field_name: str = "consents",
) -> ConsentResult:
    """Record a person's decisions (consent type key -> granted), all or nothing. The person is
    the profile of `distinct_id` (created when new; a merged person's ids record on the
    survivor, since merges move identities). Raises ConsentError before writing anything."""
    types = {t.key: t for t in ConsentType.objects.filter(enabled=True, key__in=list(decisions))}
    consent_decisions_check(decisions, types=types, field_name=field_name)
    at = at or timezone.now()
    result = ConsentResult(profile=None)
    with transaction.atomic():
        person_locks_hold(distinct_ids=[distinct_id])
        profile = identities_resolve([distinct_id])[distinct_id]
        result.profile = profile
        current = {
            c.consent_type_id: c
            for c in ProfileConsent.objects.select_for_update().filter(
                profile=profile, consent_type__in=list(types.values())
            )
        }
        for key, granted in decisions.items():
            row = current.get(types[key].pk)
            if row is not None and row.granted and not granted and not types[key].revokable:
                raise ConsentError(
                    f"The consent {key!r} can't be revoked once granted (not revokable)",
                    field=f"{field_name}.{key}",
                    code="not_revokable",
                )
        for key, granted in decisions.items():
            changed = consent_set(
                profile=profile,
                consent_type=types[key],
                granted=granted,
                channel=channel,
                source=source,
                at=at,
                expires_at=expires_at,
                distinct_id=distinct_id,
                actor=actor,
                current=current.get(types[key].pk),
            )
            (result.changed if changed else result.unchanged).append(key)
    return result


def consent_set(
    *,
    profile: Profile,
    consent_type: ConsentType,
    granted: bool,
    channel: str,
    at: datetime,
    source: EventSource | None = None,
    expires_at: datetime | None = None,
    distinct_id: str = "",
    actor: str = "",
    current: ProfileConsent | None = None,
    emit: bool = True,
) -> bool:
    """The one function that changes a profile's consent: the decision row, a history row,
    a `consent_granted` / `consent_revoked` event and the profiles-changed notification (so
    segments on `consent.<key>` follow). An older decision than the stored one, or a repeat of
    it, changes nothing. Returns whether the state changed. Call inside a transaction."""
    if current is not None and current.decided_at > at:
        return False  # a late delivery of an older decision
    previous = current.granted if current is not None else None
    # A repeat (Segment's context repeats the preferences on every call) changes nothing, and
    # does not extend a grant's expiry; only an explicit new expiry does.
    if (
        current is not None
        and previous == granted
        and (not granted or expires_at is None or expires_at == current.expires_at)
    ):
        return False
    if granted and expires_at is None and consent_type.auto_revoke_after:
        expires_at = at + consent_type.auto_revoke_after
    if not granted:
        expires_at = None
    if current is None:
        current = ProfileConsent(profile=profile, consent_type=consent_type)
    current.granted = granted
    current.decided_at = at
    current.expires_at = expires_at
    current.channel = channel
    current.source = source
    current.save()
    distinct_id = distinct_id or _distinct_id_of(profile)
    change = ConsentChange.objects.create(
        profile=profile,
        consent_type=consent_type,
        granted=granted,
        previous=previous,
        at=at,
        expires_at=expires_at,
        channel=channel,
        source=source,
        distinct_id=distinct_id[:200],
        actor=actor[:255],
    )
    if previous == granted:
        return False  # only the expiry moved
    if emit and distinct_id:
        events_emit(
            distinct_id=distinct_id,
            event_name=CONSENT_GRANTED if granted else CONSENT_REVOKED,
            properties={
                "consent": consent_type.key,
                "channel": channel,
                "previous": None if previous is None else ("granted" if previous else "denied"),
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
            category="consent",
            message_id=f"consent-change-{change.pk}",
            timestamp=at,
        )
    profile_hooks.profiles_changed(profile_ids=[profile.pk])
    return True


def _distinct_id_of(profile: Profile) -> str:
    """The id to emit a profile's consent events under: a user id when it has one."""
    ids = list(
        Identity.objects.filter(profile=profile)
        .order_by("-kind", "created_at")
        .values_list("kind", "distinct_id")
    )
    for kind, distinct_id in ids:
        if kind == IdentityKind.USER_ID:
            return str(distinct_id)
    return str(ids[0][1]) if ids else ""


def consent_set_by_staff(
    *, profile: Profile, decisions: Mapping[str, bool], user: Any
) -> ConsentResult:
    """A staff member records decisions for a profile (admin, management API). A merged
    profile is refused: its consents live on the survivor."""
    if profile.merged_into_id is not None:
        raise ConsentError(
            f"Profile {profile.pk} was merged into {profile.merged_into_id}: record consents on "
            "that profile",
            field="profile",
            code="profile_merged",
            status_code=409,
        )
    types = {t.key: t for t in ConsentType.objects.filter(enabled=True, key__in=list(decisions))}
    consent_decisions_check(decisions, types=types, field_name="consents")
    result = ConsentResult(profile=profile)
    at = timezone.now()
    actor = getattr(user, "username", "") or ""
    with transaction.atomic():
        current = {
            c.consent_type_id: c
            for c in ProfileConsent.objects.select_for_update().filter(profile=profile)
        }
        for key, granted in decisions.items():
            changed = consent_set(
                profile=profile,
                consent_type=types[key],
                granted=granted,
                channel=ConsentChannel.ADMIN,
                at=at,
                actor=actor,
                current=current.get(types[key].pk),
            )
            (result.changed if changed else result.unchanged).append(key)
    return result


def consents_revoke_expired(*, now: datetime | None = None, limit: int = 10_000) -> int:
    """Revoke grants past their expiry (each emits consent_revoked). Returns how many."""
    now = now or timezone.now()
    ids = list(
        ProfileConsent.objects.filter(granted=True, expires_at__lte=now).values_list(
            "pk", flat=True
        )[:limit]
    )
    revoked = 0
    for pk in ids:
        with transaction.atomic():
            row = (
                ProfileConsent.objects.select_for_update()
                .select_related("profile", "consent_type")
                .filter(pk=pk, granted=True, expires_at__lte=now)
                .first()
            )
            if row is None:
                continue  # decided again meanwhile
            if consent_set(
                profile=row.profile,
                consent_type=row.consent_type,
                granted=False,
                channel=ConsentChannel.EXPIRY,
                at=max(now, row.decided_at),
                current=row,
            ):
                revoked += 1
    if revoked:
        logger.info("Revoked %d expired consents", revoked)
    return revoked


def consents_profiles_merged(*, merge: ProfileMerge) -> None:
    """Profiles merge hook: per consent type, the survivor keeps the most recent decision of
    the two. The merged profile keeps its own rows, so an unmerge gives them back to it."""
    survivor_rows = {
        c.consent_type_id: c
        for c in ProfileConsent.objects.select_for_update().filter(profile_id=merge.survivor_id)
    }
    merged_rows = ProfileConsent.objects.filter(profile_id=merge.merged_id).select_related(
        "consent_type", "source"
    )
    survivor = Profile.objects.get(pk=merge.survivor_id)
    for theirs in merged_rows:
        ours = survivor_rows.get(theirs.consent_type_id)
        if ours is not None and ours.decided_at >= theirs.decided_at:
            continue
        consent_set(
            profile=survivor,
            consent_type=theirs.consent_type,
            granted=theirs.granted,
            channel=ConsentChannel.MERGE,
            at=theirs.decided_at,
            source=theirs.source,
            expires_at=theirs.expires_at,
            actor=merge.triggered_by,
            current=ours,
        )
