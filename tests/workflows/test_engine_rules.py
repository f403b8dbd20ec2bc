"""Routing rules: matching by event name, source and condition; the cached rules table and its
invalidation; internal events are routable."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import TestCase, override_settings

from apps.segments import services as segment_services
from apps.sources import services as source_services
from apps.workflows import matching, services
from apps.workflows.models import RunStatus, WorkflowRun
from cdp.errors import DomainError
from tests.clients import tracking_client_for
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db


def ran(workflow: Any) -> list[str]:
    return list(
        WorkflowRun.objects.filter(workflow=workflow, status=RunStatus.SUCCEEDED)
        .order_by("id")
        .values_list("distinct_id", flat=True)
    )


def logger_workflow(name: str) -> Any:
    return published(chain(node("l", "log", message=name)), name=name)


def test_rules_match_by_event_name_and_any(tracker: Any) -> None:
    signup = logger_workflow("signup")
    anything = logger_workflow("anything")
    route(signup, "signup")
    route(anything, "")
    track(tracker, "signup", "a")
    track(tracker, "page_view", "b")
    assert ran(signup) == ["a"]
    assert ran(anything) == ["a", "b"]


def test_rules_match_by_source(tracker: Any) -> None:
    other = source_services.source_create(name="Backend")
    web_only = logger_workflow("web")
    backend_only = logger_workflow("backend")
    route(web_only, "signup", source=tracker_source(tracker))
    route(backend_only, "signup", source=other)
    track(tracker, "signup", "a")
    track(tracking_client_for(other), "signup", "b")
    assert ran(web_only) == ["a"]
    assert ran(backend_only) == ["b"]


def tracker_source(tracker: Any) -> Any:
    from apps.sources.models import EventSource

    return EventSource.objects.get(write_key=tracker.write_key)


def test_rule_conditions_use_the_filter_language(tracker: Any) -> None:
    workflow = logger_workflow("pro")
    route(
        workflow,
        "signup",
        condition={
            "and": [
                {"property": "event.properties.plan", "operator": "is", "value": "pro"},
                {"property": "traits.country", "operator": "is_not", "value": "FR"},
            ]
        },
    )
    track(tracker, "signup", "a", plan="pro")
    track(tracker, "signup", "b", plan="free")
    assert ran(workflow) == ["a"]
    assert WorkflowRun.objects.count() == 1  # a false condition records no run


def test_invalid_rule_conditions_are_refused(db: None) -> None:
    workflow = logger_workflow("w")
    with pytest.raises(DomainError) as info:
        services.rule_create(
            name="bad", workflow=workflow, condition={"property": "traits.x", "operator": "nope"}
        )
    assert info.value.field == "condition"


def test_priority_orders_runs_and_disabled_or_unpublished_rules_do_not_match(tracker: Any) -> None:
    low = published(chain(node("s", "set_trait", trait="order", value="low")), name="low")
    high = published(chain(node("s", "set_trait", trait="order", value="high")), name="high")
    route(low, "signup", priority=1)
    route(high, "signup", priority=5)
    disabled = logger_workflow("disabled")
    route(disabled, "signup", enabled=False)
    draft_only = services.workflow_create(name="draft", graph=chain(node("l", "log", message="x")))
    route(draft_only, "signup")
    track(tracker, "signup", "a")
    runs = list(WorkflowRun.objects.order_by("id").values_list("workflow__name", flat=True))
    assert runs == ["high", "low"]
    assert profile_of("a").traits["order"] == "low"  # the later run's change wins


def test_rule_changes_invalidate_the_cached_table(tracker: Any) -> None:
    workflow = logger_workflow("w")
    rule = route(workflow, "signup")
    track(tracker, "signup", "a")
    services.rule_update(rule=rule, event_name="purchase")
    track(tracker, "signup", "b")
    track(tracker, "purchase", "c")
    services.rule_update(rule=rule, enabled=False)
    track(tracker, "purchase", "d")
    services.rule_update(rule=rule, enabled=True)
    services.workflow_unpublish(workflow=workflow)
    track(tracker, "purchase", "e")
    services.workflow_publish(workflow=workflow)
    track(tracker, "purchase", "f")
    services.rule_delete(rule=rule)
    track(tracker, "purchase", "g")
    assert ran(workflow) == ["a", "c", "f"]


@override_settings(CDP_SHARED_VERSION_CHECK_SECONDS=3600)
def test_other_processes_see_changes_through_the_version_key(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = logger_workflow("w")
    table = matching.rules_table()
    assert table.empty
    # Another process adds a rule and publishes a new version: this one's table is trusted
    # until it reads the version again.
    with monkeypatch.context() as patch:  # not this process's memory nor its local version
        patch.setattr(matching, "rules_cache_clear", lambda: None)
        patch.setattr(matching.RULES_VERSION, "changed", lambda: None)
        route(workflow, "signup")
    cache.set(matching.RULES_VERSION.key, "published by another process")
    assert matching.rules_table() is table
    with override_settings(CDP_SHARED_VERSION_CHECK_SECONDS=0):
        assert not matching.rules_table().empty
    # A version key lost from the cache (eviction) also forces a reload.
    cache.delete(matching.RULES_VERSION.key)
    with override_settings(CDP_SHARED_VERSION_CHECK_SECONDS=0):
        fresh = matching.rules_table()
        assert not fresh.empty
        assert fresh is not table


def test_a_new_published_version_is_used_by_the_next_run(tracker: Any) -> None:
    workflow = published(chain(node("s", "set_trait", trait="v", value=1)))
    route(workflow, "signup")
    track(tracker, "signup", "a")
    first = workflow.published_version
    services.workflow_update_draft(
        workflow=workflow, graph=chain(node("s", "set_trait", trait="v", value=2))
    )
    track(tracker, "signup", "b")  # the draft is not live
    second = services.workflow_publish(workflow=workflow)
    track(tracker, "signup", "c")
    assert first is not None
    services.workflow_restore(workflow=workflow, version=first)
    track(tracker, "signup", "d")
    traits = {d: profile_of(d).traits["v"] for d in "abcd"}
    assert traits == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert second.number == 2
    workflow.refresh_from_db()
    assert workflow.graph["nodes"][1]["config"]["value"] == 1


def test_internal_segment_events_are_routable(tracker: Any) -> None:
    workflow = published(
        chain(
            node(
                "s",
                "set_trait",
                trait="welcomed",
                value="{{ event.properties.segment_key | default(event.properties.segment) }}",
            )
        )
    )
    route(workflow, "segment_entered")
    segment = segment_services.segment_create(key="vips", name="VIPs", kind="static")
    track(tracker, "page_view", "a")
    with TestCase.captureOnCommitCallbacks(execute=True):
        segment_services.segment_members_add(segment=segment, distinct_ids=["a"])
    assert ran(workflow) == ["a"]
    assert profile_of("a").traits["welcomed"]
