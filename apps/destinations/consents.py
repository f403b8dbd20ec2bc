"""The one place destinations ask whether a profile's consents allow a delivery.

A destination lists `required_consents` (consent type keys). The consents app, which sits
below destinations, registers its checker here from its AppConfig.ready(); until one is
registered, a destination that requires consents sends nothing (no evidence of consent is
no consent), while one that requires none is not affected."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol


class ConsentChecker(Protocol):
    """Whether the profile has granted every one of these consent types (now)."""

    def __call__(self, *, profile_id: uuid.UUID, consent_keys: Sequence[str]) -> bool: ...


_checker: list[ConsentChecker] = []


def register_consent_checker(checker: ConsentChecker) -> None:
    _checker[:] = [checker]


def destination_consents_allow(
    *, required_consents: Sequence[str], profile_id: uuid.UUID | None
) -> bool:
    """Whether a delivery about this profile may be written for a destination requiring
    these consents."""
    if not required_consents:
        return True
    if profile_id is None or not _checker:
        return False
    return _checker[0](profile_id=profile_id, consent_keys=list(required_consents))
