"""Private traits never reach a user without profiles.view_private_traits through workflows:
test runs, run traces (API and admin), rule conditions and graphs that read them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.workflows import services
from apps.workflows.models import Rule, Workflow, WorkflowRun
from apps.workflows.privacy import graph_references_private
from apps.workflows.templating import template_references_private
from tests.factories import chain, node, published, route, track
from tests.users import client_with_perms, user_with_perms

pytestmark = pytest.mark.django_db
EMAIL = "ann.secret@example.com"
PRIVATE = "profiles.view_private_traits"
TESTER = ("workflows.view_workflow", "workflows.run_workflow_test")
READS_EMAIL = chain(
    node("mail", "template", template="Hi {{ profile.private_traits.email }}", variable="greeting")
)
TEST_BODY = {"event": {"event_name": "signup"}, "profile": {"distinct_id": "ann"}}


@pytest.fixture
def ann(tracker: Any) -> None:
    response = tracker.post(
        {"distinct_id": "ann", "private_traits": {"email": EMAIL}}, path="/api/identify"
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("template", "private"),
    [
        ("{{ profile.private_traits.email }}", True),
        ('{{ profile["private_traits"]["email"] }}', True),
        ("{{ profile }}", True),
        ("{{ profile | tojson }}", True),
        ("{% set p = profile %}{{ p.private_traits }}", True),
        ("{{ profile[vars.key] }}", True),
        ('{{ event.properties["$set_private"].email }}', True),
        ('{{ event.properties["$set"].email }}', True),
        ("{{ event.properties }}", True),
        ("{{ event }}", True),
        ("Hi {{ profile.traits.first_name }}", False),
        ("{{ event.properties.plan }} {{ vars.total }} {{ session.utm_source }}", False),
        ('{{ event.properties["$set"].plan }}', False),
        ("no template at all", False),
    ],
)
def test_templates_reading_private_traits_are_recognized(template: str, private: bool) -> None:
    assert template_references_private(template) is private


def test_graphs_reading_private_traits_are_recognized() -> None:
    condition = chain(
        node("c", "condition", filter={"property": "private_traits.email", "operator": "is_set"})
    )
    copied = chain(node("c", "copy_property", **{"from": "event.properties.$set_private.email"}))
    harmless = chain(node("t", "set_trait", trait="tier", value="{{ event.properties.plan }}"))

    assert graph_references_private(READS_EMAIL)
    assert graph_references_private(condition)
    assert graph_references_private(copied)
    assert not graph_references_private(harmless)


def test_a_test_run_reading_private_traits_needs_the_permission(ann: None) -> None:
    workflow = services.workflow_create(name="wf", graph=READS_EMAIL)
    url = f"/api/v1/workflows/{workflow.pk}/test"

    refused = client_with_perms(*TESTER).post(url, TEST_BODY, format="json")
    allowed = client_with_perms(*TESTER, PRIVATE).post(url, TEST_BODY, format="json")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert PRIVATE in refused.json()["error"]["message"]
    assert EMAIL not in refused.content.decode()
    assert allowed.status_code == 200
    assert allowed.json()["variables"]["greeting"] == f"Hi {EMAIL}"


def test_test_results_are_redacted_without_the_permission(ann: None) -> None:
    # Reads no private trait itself, but the profile it leaves holds one.
    graph = chain(node("tier", "set_trait", trait="tier", value="gold"))
    workflow = services.workflow_create(name="wf", graph=graph)
    url = f"/api/v1/workflows/{workflow.pk}/test"

    hidden = client_with_perms(*TESTER).post(url, TEST_BODY, format="json")
    shown = client_with_perms(*TESTER, PRIVATE).post(url, TEST_BODY, format="json")

    assert hidden.status_code == 200
    assert hidden.json()["profile_after"]["traits"]["tier"] == "gold"
    assert EMAIL not in hidden.content.decode()
    assert shown.json()["profile_after"]["private_traits"] == {"email": EMAIL}


def test_run_traces_and_variables_are_redacted_in_the_api(ann: None, tracker: Any) -> None:
    route(published(READS_EMAIL), "signup")
    track(tracker, "signup", "ann")
    run = WorkflowRun.objects.get()
    url = f"/api/v1/runs/{run.pk}"

    hidden = client_with_perms("workflows.view_workflowrun").get(url)
    shown = client_with_perms("workflows.view_workflowrun", PRIVATE).get(url)

    assert hidden.status_code == 200
    assert EMAIL not in hidden.content.decode()
    assert hidden.json()["variables"]["greeting"] == "Hi [private]"
    assert shown.json()["variables"]["greeting"] == f"Hi {EMAIL}"


def test_run_traces_are_redacted_in_the_admin(ann: None, tracker: Any) -> None:
    route(published(READS_EMAIL), "signup")
    track(tracker, "signup", "ann")
    run = WorkflowRun.objects.get()
    url = f"/admin/workflows/workflowrun/{run.pk}/change/"
    without, with_perm = Client(), Client()
    without.force_login(user_with_perms("workflows.view_workflowrun"))
    with_perm.force_login(user_with_perms("workflows.view_workflowrun", PRIVATE))

    hidden = without.get(url)

    assert hidden.status_code == 200
    assert EMAIL not in hidden.content.decode()
    assert "Hi [private]" in hidden.content.decode()
    assert EMAIL in with_perm.get(url).content.decode()


def test_the_admin_test_page_refuses_a_workflow_reading_private_traits(ann: None) -> None:
    workflow = services.workflow_create(name="wf", graph=READS_EMAIL)
    client = Client()
    client.force_login(user_with_perms(*TESTER))

    page = client.post(
        f"/admin/workflows/workflow/{workflow.pk}/test/",
        {"event": '{"event_name": "signup"}', "distinct_id": "ann"},
    )

    assert page.status_code == 200
    assert PRIVATE in page.content.decode()
    assert EMAIL not in page.content.decode()


@pytest.mark.parametrize("field", ["condition", "graph"])
def test_rules_and_graphs_reading_private_traits_need_the_permission(field: str) -> None:
    workflow = services.workflow_create(name="wf", graph=chain())
    condition = {"property": "private_traits.email", "operator": "ends_with", "value": "@x.com"}
    if field == "condition":
        perms = ("workflows.add_rule",)
        url, body = "/api/v1/rules", {"name": "r", "workflow": workflow.pk, "condition": condition}
    else:
        perms = ("workflows.change_workflow",)
        url, body = f"/api/v1/workflows/{workflow.pk}", {"graph": READS_EMAIL}
    method = "post" if field == "condition" else "patch"

    refused = getattr(client_with_perms(*perms), method)(url, body, format="json")

    assert refused.status_code == 403
    assert PRIVATE in refused.json()["error"]["message"]
    assert not Rule.objects.exists()
    assert Workflow.objects.get().graph == chain()
    allowed = getattr(client_with_perms(*perms, PRIVATE), method)(url, body, format="json")
    assert allowed.status_code in (200, 201), allowed.content


def test_the_admin_refuses_a_rule_condition_on_private_traits() -> None:
    workflow = services.workflow_create(name="wf", graph=chain())
    client = Client()
    client.force_login(user_with_perms("workflows.add_rule", "workflows.view_rule"))

    page = client.post(
        "/admin/workflows/rule/add/",
        {
            "name": "r",
            "workflow": workflow.pk,
            "event_name": "",
            "condition": '{"property": "private_traits.email", "operator": "is_set"}',
            "enabled": "on",
            "priority": "0",
        },
    )

    assert page.status_code == 200  # the form again, with the error
    assert PRIVATE in page.content.decode()
    assert not Rule.objects.exists()


def test_publishing_and_testing_in_the_admin_need_their_permissions() -> None:
    workflow = services.workflow_create(name="wf", graph=chain())
    editor = Client()
    editor.force_login(user_with_perms("workflows.view_workflow", "workflows.change_workflow"))
    base = f"/admin/workflows/workflow/{workflow.pk}"

    assert editor.post(f"{base}/publish/").status_code == 403
    assert editor.get(f"{base}/test/").status_code == 403
    listing = editor.get("/admin/workflows/workflow/").content.decode()
    assert 'value="publish_selected"' not in listing
    workflow.refresh_from_db()
    assert workflow.published_version is None

    publisher = Client()
    publisher.force_login(user_with_perms("workflows.view_workflow", "workflows.publish_workflow"))
    assert publisher.post(f"{base}/publish/").status_code == 302
    workflow.refresh_from_db()
    assert workflow.published_version is not None


def test_rule_conditions_hide_private_values_without_the_permission() -> None:
    workflow = services.workflow_create(name="wf", graph=chain())
    rule = route(
        workflow,
        "signup",
        condition={"property": "private_traits.email", "operator": "is", "value": EMAIL},
    )

    hidden = client_with_perms("workflows.view_rule").get(f"/api/v1/rules/{rule.pk}")
    shown = client_with_perms("workflows.view_rule", PRIVATE).get(f"/api/v1/rules/{rule.pk}")

    assert EMAIL not in hidden.content.decode()
    assert hidden.json()["condition"]["property"] == "private_traits.email"
    assert shown.json()["condition"]["value"] == EMAIL
