"""The insights API: the named permission, results equal to the runners', people drill-downs,
clear 400s naming the field for bad queries (nothing stored), and the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from apps.insights.models import SavedInsight
from apps.insights.queries import FunnelQuery, TrendsQuery, funnel_people, run_trends
from tests.insights.test_queries_world import BASE, Row, World, store
from tests.users import token_client

RANGE = {"date_from": "2025-03-01", "date_to": "2025-03-31"}


def _client(user: Any) -> APIClient:
    return token_client(user)  # an API token of the project's own (apps.accounts)


def _user_with(django_user_model: Any, username: str, *names: tuple[str, str]) -> Any:
    user = django_user_model.objects.create_user(username=username, password="pw-123456!")
    user.user_permissions.add(
        *(Permission.objects.get(content_type__app_label=a, codename=c) for a, c in names)
    )
    return user


@pytest.fixture
def analyst(django_user_model: Any) -> APIClient:
    """Runs insights and sees the people behind them."""
    return _client(
        _user_with(
            django_user_model,
            "analyst",
            ("insights", "view_savedinsight"),
            ("profiles", "view_profile"),
        )
    )


@pytest.fixture
def outsider(django_user_model: Any) -> APIClient:
    return _client(django_user_model.objects.create_user(username="x", password="pw-123456!"))


@pytest.fixture
def world(db: None) -> World:
    world = World(
        rows=[
            Row(0, 0, "signup", BASE, "pro", 5, "/"),
            Row(0, 1, "buy", BASE.replace(hour=12), "pro", 7, "/"),
            Row(1, 0, "signup", BASE, "free", 1, "/"),
            Row(2, 0, "view", BASE, None, None, "/pricing"),
        ]
    )
    store(world)
    return world


@pytest.mark.django_db
def test_trends_through_the_api_equal_the_runner(analyst: APIClient, world: World) -> None:
    query = {"series": [{"event": "signup", "math": "unique_people"}], **RANGE}
    response = analyst.post("/api/v1/insights/trends", query, format="json")
    assert response.status_code == 200
    assert response.json() == run_trends(TrendsQuery.from_dict(query)).as_dict()
    assert sum(response.json()["results"][0]["data"]) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "query"),
    [
        ("funnels", {"steps": [{"event": "signup"}, {"event": "buy"}]}),
        ("retention", {"start": {"event": "signup"}, "return": {"event": "buy"}, "period": "day"}),
        ("paths", {"start_point": "signup"}),
    ],
)
def test_every_kind_answers(analyst: APIClient, world: World, kind: str, query: Any) -> None:
    response = analyst.post(f"/api/v1/insights/{kind}", {**query, **RANGE}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["kind"] == kind


@pytest.mark.django_db
def test_people_of_a_funnel_step_and_a_retention_cell(analyst: APIClient, world: World) -> None:
    query = {"steps": [{"event": "signup"}, {"event": "buy"}], **RANGE}
    response = analyst.post(
        "/api/v1/insights/funnels/people",
        {"query": query, "step": 1, "status": "dropped"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {"people": [world.people[1]], "next_offset": None}
    assert response.json()["people"] == funnel_people(
        FunnelQuery.from_dict(query), step=1, status="dropped"
    )
    retention = {
        "start": {"event": "signup"},
        "return": {"event": "buy"},
        "period": "day",
        "date_from": "2025-03-03",
        "date_to": "2025-03-03",
    }
    response = analyst.post(
        "/api/v1/insights/retention/people",
        {"query": retention, "cohort": 0, "period": 0, "limit": 1},
        format="json",
    )
    assert response.status_code == 200
    assert len(response.json()["people"]) == 1
    assert response.json()["next_offset"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("funnels/people", {"query": {"steps": [{"event": "signup"}, {"event": "buy"}]}}),
        ("retention/people", {"query": {"start": {"event": "signup"}, "return": {"event": "buy"}}}),
    ],
)
def test_the_people_of_an_insight_need_the_profiles_permission(
    django_user_model: Any, world: World, path: str, body: Any
) -> None:
    """Running insights shows counts; the profiles behind them need profiles.view_profile."""
    counts_only = _client(
        _user_with(django_user_model, "counts", ("insights", "view_savedinsight"))
    )
    query = {"series": [{"event": "signup"}], **RANGE}
    assert counts_only.post("/api/v1/insights/trends", query, format="json").status_code == 200
    response = counts_only.post(f"/api/v1/insights/{path}", body, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "profiles.view_profile" in error["message"]
    assert "people" not in response.json()


@pytest.mark.django_db
def test_running_insights_needs_the_named_permission(outsider: APIClient, world: World) -> None:
    query = {"series": [{"event": "signup"}]}
    response = outsider.post("/api/v1/insights/trends", query, format="json")
    assert response.status_code == 403
    assert "insights.view_savedinsight" in response.json()["error"]["message"]
    assert APIClient().post("/api/v1/insights/trends", query, format="json").status_code in (
        401,
        403,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("trends", {"series": [{"event": "a", "math": "p99"}]}, "invalid_query", "series[0].math"),
        (
            "trends",
            {"series": [{"event": "a"}], "filter": "event.name is"},
            "invalid_filter",
            "filter",
        ),
        ("funnels", {"steps": [{"event": "a"}], **RANGE}, "invalid_query", "steps"),
        ("retention", {"start": {"event": "a"}}, "invalid_query", "return"),
        ("paths", {"steps": 99}, "invalid_query", "steps"),
        ("paths", ["not", "an", "object"], "invalid_query", None),
        (
            "funnels/people",
            {"query": {"steps": [{"event": "a"}, {"event": "b"}]}, "step": 0, "status": "dropped"},
            "invalid_query",
            "step",
        ),
        (
            "retention/people",
            {"query": {"start": {"event": "a"}, "return": {"event": "b"}}, "cohort": 999},
            "invalid_query",
            "cohort",
        ),
    ],
)
def test_bad_queries_get_a_400_naming_the_field(
    analyst: APIClient, path: str, body: Any, code: str, field: str | None
) -> None:
    response = analyst.post(f"/api/v1/insights/{path}", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert SavedInsight.objects.count() == 0  # running a query stores nothing


@pytest.mark.django_db
def test_the_schema_lists_the_insight_endpoints(analyst: APIClient, admin_user: Any) -> None:
    client = APIClient()
    client.force_login(admin_user)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for kind in ("trends", "funnels", "retention", "paths"):
        assert "post" in schema["paths"][f"/api/v1/insights/{kind}"]
    assert "/api/v1/insights/funnels/people" in schema["paths"]


@pytest.mark.django_db
def test_one_query_per_run_through_the_api(
    analyst: APIClient, world: World, django_assert_max_num_queries: Any
) -> None:
    query = {"series": [{"event": "signup"}], **RANGE}
    # Token authentication and the permission check read the user, the token, permissions.
    with django_assert_max_num_queries(5):
        assert analyst.post("/api/v1/insights/trends", query, format="json").status_code == 200
