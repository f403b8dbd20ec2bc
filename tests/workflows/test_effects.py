"""The effects registry: each kind of staged change is written by its registered applier when a
run is recorded; a kind nobody registered fails the run with nothing applied."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from apps.events.models import Event
from apps.segments import services as segment_services
from apps.segments.models import SegmentMembership
from apps.workflows import services
from apps.workflows.actions import Action, Fire
from apps.workflows.actions import registry as action_registry
from apps.workflows.context import Effect, EffectKind, NodeContext
from apps.workflows.effects import EffectApplier, effect_applier, effect_kinds, effect_register
from apps.workflows.models import NodeTrace, RunStatus, WorkflowRun
from tests.factories import chain, node, profile_of, published, route, track

pytestmark = pytest.mark.django_db


def _people(tracker: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    def check() -> None:
        assert profile_of("u1").traits == {"plan": "pro"}

    return chain(node("n", "set_trait", trait="plan", value="pro")), check


def _merge_by(tracker: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    graph = chain(node("m", "merge_by", trait="email", kind="email", value="ann@example.com"))
    route(published(graph, name="identify"), "visit")
    track(tracker, "visit", "device-b")  # device-b's profile is identified by the email

    def check() -> None:
        assert profile_of("u1").pk == profile_of("device-b").pk

    return graph, check


def _segment_add(tracker: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    segment_services.segment_create(key="vips", name="VIPs", kind="static")

    def check() -> None:
        live = SegmentMembership.objects.filter(exited_at__isnull=True, profile=profile_of("u1"))
        assert [m.segment.key for m in live] == ["vips"]

    return chain(node("a", "add_to_segment", segment="vips")), check


def _segment_remove(tracker: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    segment_services.segment_create(key="vips", name="VIPs", kind="static")
    route(published(chain(node("a", "add_to_segment", segment="vips")), name="join"), "visit")
    track(tracker, "visit", "u1")
    assert SegmentMembership.objects.filter(exited_at__isnull=True).count() == 1

    def check() -> None:
        assert not SegmentMembership.objects.filter(exited_at__isnull=True).exists()

    return chain(node("r", "remove_from_segment", segment="vips")), check


def _emit(tracker: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    def check() -> None:
        emitted = Event.objects.get(event_name="welcomed")
        assert emitted.distinct_id == "u1"
        assert emitted.context["workflow"]["depth"] == 1

    return chain(node("e", "emit_event", event_name="welcomed")), check


# One real run per registered kind: its action stages the change, its applier writes it.
CASES: dict[str, Callable[[Any], tuple[dict[str, Any], Callable[[], None]]]] = {
    EffectKind.PEOPLE: _people,
    EffectKind.MERGE_BY: _merge_by,
    EffectKind.SEGMENT_ADD: _segment_add,
    EffectKind.SEGMENT_REMOVE: _segment_remove,
    EffectKind.EMIT: _emit,
}


# Kinds the apps above register from their ready(), each covered by that app's tests.
UPPER_KINDS = {"destination_send": "tests/destinations/test_workflow_nodes.py"}


def test_every_registered_kind_is_a_built_in_one_and_covered_here() -> None:
    assert sorted(EffectKind) == sorted(CASES)
    assert set(effect_kinds()) == set(EffectKind) | set(UPPER_KINDS)


@pytest.mark.parametrize("kind", sorted(EffectKind))
def test_each_registered_kind_applies_when_the_run_is_recorded(tracker: Any, kind: str) -> None:
    graph, check = CASES[kind](tracker)
    workflow = published(graph)
    route(workflow, "signup")

    track(tracker, "signup", "u1")

    run = WorkflowRun.objects.get(workflow=workflow)
    assert run.status == RunStatus.SUCCEEDED, run.error
    trace = NodeTrace.objects.filter(run=run).exclude(node_id="start").get()
    assert len(trace.output["changes"]) == 1  # staged while the graph ran, written after
    check()


class StageUnknown(Action):
    """A plugin action staging a change no applier is registered for."""

    name = "stage_unknown"
    description = "Sets a trait, then stages a change of an unknown kind."
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}

    def run(self, context: NodeContext, payload: Any) -> Fire:
        context.people({"set": {"plan": "pro"}})
        context.effects.append(Effect("teleport", context.node_id, {"to": "moon"}))
        return Fire("out", payload)


@pytest.fixture
def unknown_kind_action() -> Iterator[None]:
    action_registry.register(StageUnknown)
    yield
    action_registry.actions_reload()


def test_an_unknown_effect_kind_fails_the_run_and_applies_nothing(
    tracker: Any, unknown_kind_action: None
) -> None:
    track(tracker, "visit", "u1")
    route(published(chain(node("x", "stage_unknown"))), "signup")

    track(tracker, "signup", "u1")

    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert run.error == "applying the changes failed: unknown change 'teleport'"
    assert profile_of("u1").traits == {}  # the people operation before it is not applied


def test_a_test_run_reports_an_unknown_effect_kind(unknown_kind_action: None) -> None:
    workflow = services.workflow_create(name="wf", graph=chain(node("x", "stage_unknown")))

    result = services.workflow_test_run(
        workflow=workflow, event_payload={"event_name": "signup", "distinct_id": "u1"}
    )

    assert result["status"] == RunStatus.FAILED
    assert result["error"] == "applying the changes failed: unknown change 'teleport'"
    assert result["changes"] == []


def test_looking_up_an_unknown_kind_names_it() -> None:
    with pytest.raises(Exception, match="unknown change 'teleport'"):
        effect_applier("teleport")


def test_a_kind_cannot_be_registered_twice() -> None:
    class People(EffectApplier):
        kind = EffectKind.PEOPLE

    with pytest.raises(ValueError, match="already registered"):
        effect_register(People)
    assert type(effect_applier(EffectKind.PEOPLE)).__name__ == "PeopleApplier"
