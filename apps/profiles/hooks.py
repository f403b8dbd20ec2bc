"""What profiles tell the apps above them, through hooks those apps register in ready().

Profiles sit below segments: they never import them. An upper app registers one function per
hook (apps/segments/apps.py does); the `profiles.E001` system check fails when one is missing,
so a project can't run with merges that leave memberships behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from django.core.checks import CheckMessage, Error

from apps.profiles.models import Profile, ProfileMerge


class MergeHook(Protocol):
    """Called inside the merge's (or unmerge's) transaction, after the profiles changed."""

    def __call__(self, *, merge: ProfileMerge) -> None: ...


class ProfilesChangedHook(Protocol):
    """Profiles whose traits, identities or groups changed outside event processing; called
    inside the change's transaction (queue follow-up work on commit)."""

    def __call__(self, *, profile_ids: Iterable[uuid.UUID | str]) -> None: ...


class GroupChangedHook(Protocol):
    """A group's own properties changed; called inside the change's transaction."""

    def __call__(self, *, group_id: int) -> None: ...


class ProfileSegmentsReader(Protocol):
    """The segments a profile is in now (the profile API's detail shows them)."""

    def __call__(self, profile: Profile) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class _Registry:
    """Each notification hook has a list of subscribers (segments, then consents or destinations
    as they register), called in registration order; the segments reader has exactly one."""

    profiles_merged: list[MergeHook] = field(default_factory=list)
    profiles_unmerged: list[MergeHook] = field(default_factory=list)
    profiles_changed: list[ProfilesChangedHook] = field(default_factory=list)
    group_changed: list[GroupChangedHook] = field(default_factory=list)
    profile_segments: ProfileSegmentsReader | None = None


_registry = _Registry()


class HookMissing(RuntimeError):
    """A profile hook was called before an app registered it (see the profiles.E001 check)."""


def _get(name: str) -> Any:
    hook = getattr(_registry, name)
    if not hook:
        raise HookMissing(
            f"No app registered the profiles hook {name!r}: add apps.segments to INSTALLED_APPS"
        )
    return hook


def _subscribe(subscribers: list[Any], hook: Any) -> None:
    if hook not in subscribers:  # ready() may run twice in tests; subscribe once
        subscribers.append(hook)


# --- registration (from an upper app's AppConfig.ready) ----------------------------------------


def register_profiles_merged(hook: MergeHook) -> None:
    _subscribe(_registry.profiles_merged, hook)


def register_profiles_unmerged(hook: MergeHook) -> None:
    _subscribe(_registry.profiles_unmerged, hook)


def register_profiles_changed(hook: ProfilesChangedHook) -> None:
    _subscribe(_registry.profiles_changed, hook)


def register_group_changed(hook: GroupChangedHook) -> None:
    _subscribe(_registry.group_changed, hook)


def register_profile_segments(reader: ProfileSegmentsReader) -> None:
    _registry.profile_segments = reader


# --- calls (from profiles) ---------------------------------------------------------------------


def profiles_merged(*, merge: ProfileMerge) -> None:
    for hook in _get("profiles_merged"):
        hook(merge=merge)


def profiles_unmerged(*, merge: ProfileMerge) -> None:
    for hook in _get("profiles_unmerged"):
        hook(merge=merge)


def profiles_changed(*, profile_ids: Iterable[uuid.UUID | str]) -> None:
    ids = list(profile_ids)
    for hook in _get("profiles_changed"):
        hook(profile_ids=ids)


def group_changed(*, group_id: int) -> None:
    for hook in _get("group_changed"):
        hook(group_id=group_id)


def profile_segments(profile: Profile) -> list[dict[str, Any]]:
    return _get("profile_segments")(profile)


# --- the system check --------------------------------------------------------------------------


def missing_hooks() -> list[str]:
    """The names of the hooks no app registered."""
    return [f.name for f in fields(_Registry) if not getattr(_registry, f.name)]


def check_hooks_registered(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """System check: every profile hook has a registered function."""
    return [
        Error(
            f"The profiles hook {name!r} is not registered.",
            hint="Install the app that registers it in its AppConfig.ready() (apps.segments).",
            obj="apps.profiles.hooks",
            id="profiles.E001",
        )
        for name in missing_hooks()
    ]
