"""Profiles tell segments about merges and changes through hooks segments register; a missing
hook fails the system check and a call, never silently."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks

from apps.profiles import hooks
from apps.segments import selectors as segment_selectors
from apps.segments import services as segment_services


def test_segments_register_every_profile_hook() -> None:
    assert hooks.missing_hooks() == []
    assert not [m for m in checks.run_checks() if m.id == "profiles.E001"]


def test_the_registered_hooks_are_the_segments_services() -> None:
    registry = hooks._registry
    assert segment_services.segments_profiles_merged in registry.profiles_merged
    assert segment_services.segments_profiles_unmerged in registry.profiles_unmerged
    assert segment_services.segments_reevaluate_later in registry.profiles_changed
    assert segment_services.segments_group_changed_later in registry.group_changed
    assert registry.profile_segments is segment_selectors.profile_segments


@pytest.fixture
def without_merged_hook(monkeypatch: Any) -> None:
    monkeypatch.setattr(hooks._registry, "profiles_merged", [])


@pytest.mark.usefixtures("without_merged_hook")
def test_a_missing_hook_fails_the_system_check_with_its_name() -> None:
    errors = [m for m in checks.run_checks() if m.id == "profiles.E001"]
    assert len(errors) == 1
    assert "'profiles_merged'" in errors[0].msg
    assert errors[0].level == checks.ERROR


@pytest.mark.usefixtures("without_merged_hook")
def test_calling_a_missing_hook_raises_a_clear_error() -> None:
    with pytest.raises(hooks.HookMissing, match="profiles_merged"):
        hooks.profiles_merged(merge=None)  # type: ignore[arg-type]


def test_every_subscriber_is_called_once_in_registration_order(monkeypatch: Any) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(hooks._registry, "group_changed", [])

    def first(*, group_id: int) -> None:
        calls.append(("first", group_id))

    def second(*, group_id: int) -> None:
        calls.append(("second", group_id))

    hooks.register_group_changed(first)
    hooks.register_group_changed(second)
    hooks.register_group_changed(first)  # a second ready() does not subscribe it twice
    hooks.group_changed(group_id=7)

    assert calls == [("first", 7), ("second", 7)]
