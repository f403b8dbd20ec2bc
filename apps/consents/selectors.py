"""Reads on consents: consent types, a person's effective consents, who holds which."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.consents.models import (
    ComplianceRule,
    ConsentChange,
    ConsentType,
    ProfileConsent,
)
from apps.profiles.models import Identity, Profile


def consent_type_list() -> QuerySet[ConsentType]:
    return ConsentType.objects.all()


def consent_types_enabled() -> dict[str, ConsentType]:
    """Enabled consent types by key."""
    return {t.key: t for t in ConsentType.objects.filter(enabled=True)}


def consent_types_required() -> list[ConsentType]:
    """What a consent-required source asks of a person: every enabled required type."""
    return list(ConsentType.objects.filter(enabled=True, required=True))


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    expires_at: datetime | None

    def holds(self, now: datetime) -> bool:
        return self.granted and (self.expires_at is None or self.expires_at > now)


_DECISIONS_SQL = f"""
SELECT identity.distinct_id, consent.consent_type_id, consent.granted, consent.expires_at
FROM {Identity._meta.db_table} AS identity
JOIN {ProfileConsent._meta.db_table} AS consent ON consent.profile_id = identity.profile_id
WHERE identity.distinct_id = ANY(%s) AND consent.consent_type_id = ANY(%s)
"""  # noqa: S608 - table names from the models, values as parameters


def decisions_for_distinct_ids(
    distinct_ids: Iterable[str], type_ids: Iterable[int]
) -> dict[str, dict[int, Decision]]:
    """Each distinct_id's decisions on the given consent types (by type id), read in one query
    through the identity table: a merged person's ids all read the survivor's decisions."""
    ids, types = list(set(distinct_ids)), list(set(type_ids))
    if not ids or not types:
        return {}
    rows: Iterable[tuple[str, int, bool, datetime | None]]
    if connection.vendor == "postgresql":
        # Every ingest batch asks this while a compliance rule needs a consent: one statement
        # of constant text with two array parameters, joining identities to consents directly
        # (the ORM's form joins profiles too and costs about three times as much to plan).
        with connection.cursor() as cursor:
            cursor.execute(_DECISIONS_SQL, [ids, types])
            rows = cursor.fetchall()
    else:
        rows = (
            ProfileConsent.objects.filter(
                profile__identities__distinct_id__in=ids, consent_type_id__in=types
            )
            .values_list(
                "profile__identities__distinct_id", "consent_type_id", "granted", "expires_at"
            )
            .order_by()
        )
    found: dict[str, dict[int, Decision]] = {}
    for distinct_id, type_id, granted, expires_at in rows:
        found.setdefault(distinct_id, {})[type_id] = Decision(granted, expires_at)
    return found


def consent_holds(
    consent_type: ConsentType, decisions: dict[int, Decision] | None, now: datetime
) -> bool:
    """Whether a person's consent of this type holds: their decision (a grant not yet expired),
    else the type's default."""
    decision = (decisions or {}).get(consent_type.pk)
    if decision is None:
        return consent_type.granted_by_default
    return decision.holds(now)


def profile_consents(profile: Profile) -> list[dict[str, Any]]:
    """Every enabled consent type with the profile's effective state, for the profile's pages."""
    now = timezone.now()
    decided = {
        c.consent_type_id: c
        for c in ProfileConsent.objects.filter(profile=profile).select_related("source")
    }
    out = []
    for consent_type in ConsentType.objects.filter(enabled=True):
        row = decided.get(consent_type.pk)
        holds = consent_holds(
            consent_type,
            {row.consent_type_id: Decision(row.granted, row.expires_at)} if row else None,
            now,
        )
        out.append(
            {
                "key": consent_type.key,
                "name": consent_type.name,
                "state": "granted" if holds else "denied",
                "decided": row is not None,
                "decided_at": row.decided_at if row else None,
                "expires_at": row.expires_at if row else None,
                "channel": row.channel if row else "",
                "source": row.source.name if row and row.source else "",
            }
        )
    return out


def profile_consent_history(profile: Profile) -> QuerySet[ConsentChange]:
    return ConsentChange.objects.filter(profile=profile).select_related("consent_type", "source")


def consent_profile_ids_sql(key: str, *, granted: bool, now: datetime | None = None) -> Any:
    """A Q over Profile for `consent.<key> is granted|denied` (the filter language's SQL
    evaluator). Raises LookupError for an unknown or disabled type."""
    consent_type = ConsentType.objects.filter(key=key, enabled=True).first()
    if consent_type is None:
        raise LookupError(key)
    now = now or timezone.now()
    decisions = ProfileConsent.objects.filter(consent_type=consent_type)
    holding = decisions.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), granted=True)
    granted_q = Q(id__in=holding.values("profile_id"))
    if consent_type.granted_by_default:
        granted_q |= ~Q(id__in=decisions.values("profile_id"))
    return granted_q if granted else ~granted_q


def consent_profile_holds(key: str, profile: Any) -> bool:
    """`consent.<key> is granted` for one profile (the in-memory evaluator). Raises LookupError
    for an unknown or disabled type."""
    consent_type = ConsentType.objects.filter(key=key, enabled=True).first()
    if consent_type is None:
        raise LookupError(key)
    row = (
        ProfileConsent.objects.filter(profile_id=profile.pk, consent_type=consent_type)
        .values_list("granted", "expires_at")
        .first()
    )
    decisions = {consent_type.pk: Decision(*row)} if row else None
    return consent_holds(consent_type, decisions, timezone.now())


def profiles_with_consents(
    profile_ids: Iterable[uuid.UUID | str], keys: Iterable[str]
) -> set[uuid.UUID]:
    """The profiles (of those given) that hold every one of the consent types named: for
    destinations that send only people who consented. An unknown or disabled key holds for
    nobody; no keys: every profile given."""
    wanted = {uuid.UUID(str(p)) for p in profile_ids}
    keys = set(keys)
    if not wanted or not keys:
        return wanted
    types = list(ConsentType.objects.filter(key__in=keys, enabled=True))
    if len(types) != len(keys):
        return set()
    now = timezone.now()
    rows = ProfileConsent.objects.filter(profile_id__in=wanted, consent_type__in=types).values_list(
        "profile_id", "consent_type_id", "granted", "expires_at"
    )
    decided: dict[uuid.UUID, dict[int, Decision]] = {}
    for profile_id, type_id, granted, expires_at in rows:
        decided.setdefault(profile_id, {})[type_id] = Decision(granted, expires_at)
    return {pid for pid in wanted if all(consent_holds(t, decided.get(pid), now) for t in types)}


def compliance_rules_enabled() -> list[ComplianceRule]:
    return list(ComplianceRule.objects.filter(enabled=True).prefetch_related("consent_types"))


def distinct_id_profile(distinct_id: str) -> Profile | None:
    identity = Identity.objects.select_related("profile").filter(distinct_id=distinct_id).first()
    return identity.profile if identity else None


def consent_default_holds(key: str) -> bool:
    """A person with no decision (an unsaved profile): the type's default. Raises LookupError
    for an unknown or disabled type."""
    consent_type = ConsentType.objects.filter(key=key, enabled=True).first()
    if consent_type is None:
        raise LookupError(key)
    return consent_type.granted_by_default
