"""The one place destinations ask whether a profile's consents allow a delivery.

A destination lists `required_consents` (consent type keys); a delivery about a profile is
written only when the profile holds every one of them granted now (the consents app's
effective state: its decision, a grant not yet expired, else the type's default). A delivery
with no profile (a personless event) is never sent to a destination that requires consents:
no evidence of consent is no consent. Consents sit below destinations, so this is a plain
import."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.consents.selectors import profiles_with_consents


def destination_consents_allow(
    *, required_consents: Sequence[str], profile_id: uuid.UUID | None
) -> bool:
    """Whether a delivery about this profile may be written for a destination requiring
    these consents."""
    if not required_consents:
        return True
    if profile_id is None:
        return False
    return profile_id in profiles_with_consents([profile_id], required_consents)
