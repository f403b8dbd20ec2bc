"""Every route of the URLconf, each method, against a table of roles: a new endpoint cannot be
forgotten (a route missing from ROUTES fails with a message saying to add it).

ROUTES says what each method of a route needs: a set of Django permissions (the caller must
hold all of them), PUBLIC (no login: tracking endpoints authenticate with a write key, health
checks, the API schema) or ADMIN (the Django admin site, which checks model permissions
itself). ROLES are users holding sets of permissions; append roles (e.g. the insights app's
Viewer, Marketer, Admin groups) and every route is checked for them too.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient
from rest_framework.views import APIView

from cdp.audit import AuditMixin
from tests.users import all_view_permissions, token_client, user_with_perms

PUBLIC = "public"
ADMIN = "admin"


def perms(*names: str) -> frozenset[str]:
    return frozenset(names)


# Tracking endpoints: write-key authentication (tests/events, tests/profiles cover it).
TRACKING = (
    "track",
    "segmentio-track",
    "segmentio-identify",
    "segmentio-page",
    "segmentio-screen",
    "segmentio-group",
    "segmentio-alias",
    "segmentio-batch",
    "segmentio-import",
    "tracardi-track",
    "rudderstack-beacon-batch",
    # RudderStack's control plane answer: authenticated by the write key (Basic auth).
    "rudderstack-source-config",
    "rudderstack-source-config-slash",
    # Webhook bridge: by the source id in the URL, and an HMAC signature when a secret is set.
    "bridge-webhook",
    "identify",
    "alias",
    "people",
    "groups",
    "group-properties",
    "consent",
)

# route name -> {METHOD: what it needs}
ROUTES: dict[str, dict[str, Any] | str] = {
    **dict.fromkeys(TRACKING, PUBLIC),
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "schema": PUBLIC,  # the API's description, no data (write keys in examples are masked)
    "api-docs": PUBLIC,
    "admin": ADMIN,
    # The management API.
    "event-list": {"GET": perms("events.view_event")},
    "event-detail": {"GET": perms("events.view_event")},
    "session-list": {"GET": perms("events.view_session")},
    "session-detail": {"GET": perms("events.view_session")},
    "source-list": {"GET": perms("sources.view_eventsource")},
    "source-detail": {
        "GET": perms("sources.view_eventsource"),
        "PATCH": perms("sources.change_eventsource"),
    },
    "source-rotate-write-key": {"POST": perms("sources.rotate_write_key")},
    "source-bridge": {"PUT": perms("sources.change_eventsource")},
    "profile-list": {"GET": perms("profiles.view_profile")},
    "profile-detail": {"GET": perms("profiles.view_profile")},
    "profile-events": {"GET": perms("profiles.view_profile", "events.view_event")},
    "profile-merge": {"POST": perms("profiles.change_profile")},
    "profile-unmerge": {"POST": perms("profiles.change_profile")},
    "group-list": {"GET": perms("profiles.view_group")},
    "consent-type-list": {
        "GET": perms("consents.view_consenttype"),
        "POST": perms("consents.add_consenttype"),
    },
    "consent-type-detail": {
        "GET": perms("consents.view_consenttype"),
        "PUT": perms("consents.change_consenttype"),
        "PATCH": perms("consents.change_consenttype"),
        "DELETE": perms("consents.delete_consenttype"),
    },
    "compliance-rule-list": {
        "GET": perms("consents.view_compliancerule"),
        "POST": perms("consents.add_compliancerule"),
    },
    "compliance-rule-detail": {
        "GET": perms("consents.view_compliancerule"),
        "PUT": perms("consents.change_compliancerule"),
        "PATCH": perms("consents.change_compliancerule"),
        "DELETE": perms("consents.delete_compliancerule"),
    },
    "compliance-rule-dry-run": {"POST": perms("consents.view_compliancerule")},
    "profile-consents": {
        "GET": perms("profiles.view_profile", "consents.view_profileconsent"),
        "POST": perms("profiles.view_profile", "consents.change_profileconsent"),
    },
    "group-detail": {"GET": perms("profiles.view_group")},
    "group-members": {"GET": perms("profiles.view_group", "profiles.view_profile")},
    "segment-list": {
        "GET": perms("segments.view_segment"),
        "POST": perms("segments.add_segment"),
    },
    "segment-preview": {"POST": perms("segments.view_segment", "profiles.view_profile")},
    "segment-detail": {
        "GET": perms("segments.view_segment"),
        "PATCH": perms("segments.change_segment"),
        "DELETE": perms("segments.delete_segment"),
    },
    "segment-members": {
        "GET": perms("segments.view_segment", "profiles.view_profile"),
        "POST": perms("segments.change_segment"),
        "DELETE": perms("segments.change_segment"),
    },
    "score-list": {
        "GET": perms("segments.view_scoredefinition"),
        "POST": perms("segments.add_scoredefinition"),
    },
    "score-detail": {
        "GET": perms("segments.view_scoredefinition"),
        "PATCH": perms("segments.change_scoredefinition"),
        "DELETE": perms("segments.delete_scoredefinition"),
    },
    "score-train": {
        "POST": perms("segments.view_scoredefinition", "segments.train_scoredefinition")
    },
    "score-versions": {
        "GET": perms("segments.view_scoredefinition", "segments.view_scoremodelversion")
    },
    "rule-list": {"GET": perms("workflows.view_rule"), "POST": perms("workflows.add_rule")},
    "rule-detail": {
        "GET": perms("workflows.view_rule"),
        "PATCH": perms("workflows.change_rule"),
        "DELETE": perms("workflows.delete_rule"),
    },
    "workflow-list": {
        "GET": perms("workflows.view_workflow"),
        "POST": perms("workflows.add_workflow"),
    },
    "workflow-import": {"POST": perms("workflows.add_workflow")},
    "workflow-detail": {
        "GET": perms("workflows.view_workflow"),
        "PATCH": perms("workflows.change_workflow"),
        "DELETE": perms("workflows.delete_workflow"),
    },
    "workflow-export": {"GET": perms("workflows.view_workflow")},
    "workflow-publish": {"POST": perms("workflows.publish_workflow")},
    "workflow-restore": {"POST": perms("workflows.publish_workflow")},
    "workflow-runs": {"GET": perms("workflows.view_workflow", "workflows.view_workflowrun")},
    "workflow-test": {"POST": perms("workflows.view_workflow", "workflows.run_workflow_test")},
    "run-list": {"GET": perms("workflows.view_workflowrun")},
    "run-detail": {"GET": perms("workflows.view_workflowrun")},
    "action-list": {"GET": perms("workflows.view_workflow")},
    # The visual editor's checks and reads (apps/workflows/apis.py): they store nothing.
    "workflow-validate": {"POST": perms("workflows.view_workflow")},
    "workflow-filter-text": {"POST": perms("workflows.view_workflow")},
    "workflow-paths": {"GET": perms("workflows.view_workflow", "events.view_event")},
    "workflow-diff": {"GET": perms("workflows.view_workflow")},
    # Privacy requests: an export's archive holds all of a person's data, hence its own permission.
    "privacy-request-list": {
        "GET": perms("consents.view_privacyrequest"),
        "POST": perms("consents.add_privacyrequest"),
    },
    "privacy-request-detail": {"GET": perms("consents.view_privacyrequest")},
    "privacy-request-download": {
        "GET": perms("consents.view_privacyrequest", "consents.download_privacy_export")
    },
    # Resources and destinations (apps/destinations/apis.py).
    "resource-list": {
        "GET": perms("destinations.view_resource"),
        "POST": perms("destinations.add_resource"),
    },
    "resource-detail": {
        "GET": perms("destinations.view_resource"),
        "PATCH": perms("destinations.change_resource"),
        "PUT": perms("destinations.change_resource"),
        "DELETE": perms("destinations.delete_resource"),
    },
    "resource-test": {"POST": perms("destinations.view_resource", "destinations.test_resource")},
    "resource-rotate-signing-secret": {"POST": perms("destinations.change_resource")},
    "destination-list": {
        "GET": perms("destinations.view_destination"),
        "POST": perms("destinations.add_destination"),
    },
    "destination-types": {"GET": perms("destinations.view_destination")},
    "destination-detail": {
        "GET": perms("destinations.view_destination"),
        "PATCH": perms("destinations.change_destination"),
        "PUT": perms("destinations.change_destination"),
        "DELETE": perms("destinations.delete_destination"),
    },
    "destination-test": {
        "POST": perms("destinations.view_destination", "destinations.test_destination")
    },
    "destination-pause": {"POST": perms("destinations.change_destination")},
    "destination-resume": {"POST": perms("destinations.change_destination")},
    "destination-deliveries": {
        "GET": perms("destinations.view_destination", "destinations.view_delivery")
    },
    "destination-replay": {"POST": perms("destinations.replay_delivery")},
    # The insights API: running a query needs the saved insights' view permission (apps/insights
    # apis.py); the people behind a funnel step or a retention cell need profiles' too.
    "insights-trends": {"POST": perms("insights.view_savedinsight")},
    "insights-funnels": {"POST": perms("insights.view_savedinsight")},
    "insights-funnels-people": {
        "POST": perms("insights.view_savedinsight", "profiles.view_profile")
    },
    "insights-retention": {"POST": perms("insights.view_savedinsight")},
    "insights-retention-people": {
        "POST": perms("insights.view_savedinsight", "profiles.view_profile")
    },
    "insights-paths": {"POST": perms("insights.view_savedinsight")},
    # The dashboard's log in and log out: a login form must be reachable without a login, and
    # logging out only ends the caller's own session (Django's auth views, POST for logout).
    "login": PUBLIC,
    "logout": PUBLIC,
    # The dashboard's pages (apps/insights/views: `page(...)` and `require(...)`). The home page
    # needs a login only: each of its tables shows under its own permission (tests/insights).
    "insights:home": {"GET": perms()},
    "insights:live": {"GET": perms("events.view_event")},
    "insights:trends": {"GET": perms("insights.view_savedinsight")},
    "insights:funnel": {"GET": perms("insights.view_savedinsight")},
    "insights:retention": {"GET": perms("insights.view_savedinsight")},
    "insights:paths": {"GET": perms("insights.view_savedinsight")},
    "insights:insight_csv": {"GET": perms("insights.view_savedinsight")},
    # Overwriting a saved insight (`saved` posted) needs insights.change_savedinsight too.
    "insights:insight_save": {"POST": perms("insights.add_savedinsight")},
    "insights:insight_people": {
        "GET": perms("insights.view_savedinsight", "profiles.view_profile")
    },
    "insights:saved_list": {"GET": perms("insights.view_savedinsight")},
    "insights:saved_open": {"GET": perms("insights.view_savedinsight")},
    "insights:saved_delete": {"POST": perms("insights.delete_savedinsight")},
    "insights:saved_shared": {"GET": perms("insights.view_savedinsight")},
    "insights:dashboard_list": {"GET": perms("insights.view_dashboard")},
    "insights:dashboard_create": {"POST": perms("insights.add_dashboard")},
    "insights:dashboard_add": {"POST": perms("insights.change_dashboard")},
    "insights:dashboard_detail": {
        "GET": perms("insights.view_dashboard", "insights.view_savedinsight")
    },
    "insights:dashboard_delete": {"POST": perms("insights.delete_dashboard")},
    "insights:dashboard_tile": {"POST": perms("insights.change_dashboard")},
    "insights:dashboard_shared": {
        "GET": perms("insights.view_dashboard", "insights.view_savedinsight")
    },
    "insights:people": {"GET": perms("profiles.view_profile")},
    "insights:profile": {"GET": perms("profiles.view_profile")},
    "insights:segment_list": {"GET": perms("segments.view_segment")},
    "insights:segment_create": {
        "GET": perms("segments.view_segment", "segments.add_segment"),
        "POST": perms("segments.view_segment", "segments.add_segment"),
    },
    "insights:segment_preview": {"GET": perms("segments.view_segment")},
    "insights:segment_detail": {
        "GET": perms("segments.view_segment", "segments.view_segmentmembership")
    },
    "insights:segment_edit": {
        "GET": perms("segments.view_segment", "segments.change_segment"),
        "POST": perms("segments.view_segment", "segments.change_segment"),
    },
    # Workflows in the dashboard: the list, a new one, the visual editor (its data comes from
    # the API, which checks each call's permission again).
    "insights:workflow_list": {"GET": perms("workflows.view_workflow")},
    "insights:workflow_create": {
        "POST": perms("workflows.view_workflow", "workflows.add_workflow")
    },
    "insights:workflow_editor": {"GET": perms("workflows.view_workflow")},
}

# POST routes that only run a query and store nothing (tests/insights checks that): no audit.
QUERIES = frozenset(
    {
        "insights-trends",
        "insights-funnels",
        "insights-funnels-people",
        "insights-retention",
        "insights-retention-people",
        "insights-paths",
    }
)


@dataclass(frozen=True)
class Role:
    """A kind of caller: None for anonymous, else the permissions its user holds; with a group,
    the user is a member of that group (not staff) and holds what the group grants."""

    name: str
    permissions: Callable[[], list[str]] | None
    group: str | None = None


def _all_permissions() -> list[str]:
    return [
        f"{app_label}.{codename}"
        for app_label, codename in Permission.objects.values_list(
            "content_type__app_label", "codename"
        )
    ]


def _groups_ensure() -> None:
    """The groups as the insights migration makes them (tests that flush the database, live
    servers and workers, remove migration data)."""
    if Group.objects.filter(name__in=("Viewer", "Marketer", "Admin")).count() != 3:
        migration = importlib.import_module("apps.insights.migrations.0001_initial")
        migration.create_roles(django_apps, None)


def _group_permissions(group: str) -> Callable[[], list[str]]:
    def read() -> list[str]:
        _groups_ensure()
        return [
            f"{app_label}.{codename}"
            for app_label, codename in Permission.objects.filter(group__name=group).values_list(
                "content_type__app_label", "codename"
            )
        ]

    return read


ROLES: list[Role] = [
    Role("anonymous", None),
    Role("staff without permissions", list),
    Role("view-only", all_view_permissions),
    Role("full", _all_permissions),
    # The insights app's roles, as its data migration makes them.
    *(Role(group, _group_permissions(group), group) for group in ("Viewer", "Marketer", "Admin")),
]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    callback: Any


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                yield Route("admin", prefix + str(entry.pattern), None)
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name or ''}"
            yield Route(name, prefix + str(entry.pattern), entry.callback)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver()))


def _declared_methods(view: Any) -> list[str] | None:
    """The methods a function view allows with Django's require_http_methods (require_POST,
    require_GET, require_safe), read through the decorators' wrapping; None if undeclared."""
    while view is not None:
        if inspect.isfunction(view):
            declared = inspect.getclosurevars(view).nonlocals.get("request_method_list")
            if declared:
                return sorted({m.upper() for m in declared} - {"HEAD", "OPTIONS"})
        view = getattr(view, "__wrapped__", None)
    return None


def methods_of(callback: Any) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:  # a DRF viewset route: {"get": "list", ...}
        return sorted(method.upper() for method in actions if method not in ("head", "options"))
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is not None:
        return sorted(
            m.upper()
            for m in view_class.http_method_names
            if hasattr(view_class, m) and m not in ("options", "head")
        )
    # A function view: the methods it declares, else GET (it serves any method as a read).
    return _declared_methods(callback) or ["GET"]


def test_every_route_is_in_the_table() -> None:
    missing = []
    for route in all_routes():
        if route.name not in ROUTES:
            missing.append(f"{route.name or '(no name)'} ({route.pattern})")
    assert not missing, (
        "Routes missing from tests/test_route_permissions.py ROUTES (add each, with the "
        f"permission every method needs, or PUBLIC with a reason): {missing}"
    )


def test_every_method_of_a_route_is_in_the_table() -> None:
    problems = []
    for route in all_routes():
        needs = ROUTES.get(route.name)
        if not isinstance(needs, dict):
            continue
        methods = methods_of(route.callback)
        if sorted(needs) != methods:
            problems.append(f"{route.name}: the table has {sorted(needs)}, the route {methods}")
    assert not problems, problems


def test_every_api_view_that_writes_records_its_changes() -> None:
    unaudited = set()
    for route in all_routes():
        view_class = getattr(route.callback, "cls", None)
        if not (view_class and issubclass(view_class, APIView)):
            continue
        needs = ROUTES.get(route.name)
        writes = isinstance(needs, dict) and set(needs) - {"GET"} and route.name not in QUERIES
        if writes and not issubclass(view_class, AuditMixin):
            unaudited.add(view_class.__name__)
    assert not unaudited, f"API views that write without cdp.audit.AuditMixin: {unaudited}"


def _cases() -> Iterator[Any]:
    for name, needs in sorted(ROUTES.items()):
        if not isinstance(needs, dict):
            continue
        for method, needed in sorted(needs.items()):
            yield pytest.param(name, method, needed, id=f"{name}-{method}")


def _url(name: str) -> str:
    route = next(r for r in all_routes() if r.name == name)
    # Regex routes (DRF routers) and path() routes alike.
    names = re.findall(r"\(\?P<(\w+)>|<(?:\w+:)?(\w+)>", route.pattern)
    kwargs = dict.fromkeys((regex or path for regex, path in names), "999999")
    return reverse(name, kwargs=kwargs or None)


@pytest.fixture
def clients(db: None) -> dict[str, tuple[APIClient, frozenset[str] | None]]:
    out: dict[str, tuple[APIClient, frozenset[str] | None]] = {}
    for role in ROLES:
        if role.permissions is None:
            out[role.name] = (APIClient(), None)
        else:
            held = frozenset(role.permissions())
            if role.group:
                user = user_with_perms(staff=False)
                user.groups.add(Group.objects.get(name=role.group))
                user = type(user).objects.get(pk=user.pk)  # a fresh permission cache
            else:
                user = user_with_perms(*held)
            client = token_client(user)  # the API
            client.force_login(user)  # pages
            out[role.name] = (client, held)
    return out


@pytest.mark.parametrize(("name", "method", "needed"), list(_cases()))
def test_each_role_gets_what_its_permissions_allow(
    clients: dict[str, tuple[APIClient, frozenset[str] | None]],
    name: str,
    method: str,
    needed: frozenset[str],
) -> None:
    url = _url(name)
    for role, (client, held) in clients.items():
        # Made-up ids: an allowed call answers 404 or 400, never stores anything.
        response = client.generic(method, url, "{}", content_type="application/json")
        if held is None:
            # The API answers 401; a page (Django view) sends to the login page.
            to_login = response.status_code == 302 and "login" in response.get("Location", "")
            assert response.status_code == 401 or to_login, (role, name, method, response.content)
            continue
        allowed = needed <= held
        if allowed:
            assert response.status_code not in (401, 403), (role, name, method, response.content)
        else:
            assert response.status_code == 403, (role, name, method, response.content)
            if response.get("Content-Type", "").startswith("application/json"):
                error = response.json()["error"]
                assert error["code"] == "permission_denied"
                assert any(perm in error["message"] for perm in needed - held), error
