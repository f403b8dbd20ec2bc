"""The segments management API: create/validate (400 naming the leaf, nothing saved),
read/update/delete, preview, members (paginated, CSV), static add/remove, the profile's
segments."""

from __future__ import annotations

import csv
import io

import pytest

from apps.segments.models import Segment, SegmentMembership
from tests.factories import PRO, members, profile_of

URL = "/api/v1/segments"


@pytest.fixture
def api(api_client, django_capture_on_commit_callbacks):
    """The API client, with commit hooks (a new segment's first compute) run."""

    class Api:
        def __getattr__(self, method):
            call = getattr(api_client, method)

            def run(*args, **kwargs):
                kwargs.setdefault("format", "json")
                with django_capture_on_commit_callbacks(execute=True):
                    return call(*args, **kwargs)

            return run

    return Api()


@pytest.fixture
def pros(people):
    for n in range(3):
        people.people(f"pro-{n}", set={"plan": "pro", "email": f"pro{n}@example.com"})
    people.people("free-0", set={"plan": "free"})
    return [profile_of(f"pro-{n}") for n in range(3)]


def test_create_a_dynamic_segment_computes_its_members(api, pros):
    response = api.post(URL, {"key": "pro", "name": "Pro plan", "filter": PRO})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"] == "pro"
    assert body["kind"] == "dynamic"
    assert body["filter"] == PRO
    assert body["filter_text"] == 'traits.plan is "pro"'
    assert members("pro") == {"pro-0", "pro-1", "pro-2"}
    assert api.get(f"{URL}/pro").json()["member_count"] == 3


def test_create_from_the_text_form(api, pros):
    response = api.post(URL, {"key": "pro", "name": "Pro", "filter_text": 'traits.plan is "pro"'})

    assert response.status_code == 201, response.content
    assert response.json()["filter"] == PRO


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"filter": {"and": [PRO, {"property": "traits.plan", "operator": "nope", "value": 1}]}},
            "filter.and[1]",
            "nope",
        ),
        ({"filter": {"property": "bogus.x", "operator": "is", "value": "a"}}, "filter", "bogus"),
        ({"filter_text": 'traits.plan is "pro" and ('}, "filter_text", "position"),
        ({"filter": PRO, "filter_text": 'traits.plan is "pro"'}, "filter_text", "not both"),
        ({}, "filter", "needs a filter"),
        ({"filter": {"in_segment": "missing"}}, "filter", "missing"),
        ({"filter": "traits.plan"}, "filter", ""),
    ],
)
def test_bad_filters_are_400_naming_the_leaf_and_save_nothing(api, body, field, words):
    response = api.post(URL, {"key": "bad", "name": "Bad", **body})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"].startswith(field), error
    assert words in error["message"], error
    assert not Segment.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "has space", "name": "x", "filter": PRO}, "key"),
        ({"key": "preview", "name": "x", "filter": PRO}, "key"),
        ({"key": "ok", "filter": PRO}, "name"),
        ({"key": "ok", "name": "x", "kind": "weird"}, "kind"),
        ({"key": "ok", "name": "x", "kind": "static", "filter": PRO}, "filter"),
    ],
)
def test_bad_fields_are_400(api, body, field):
    response = api.post(URL, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Segment.objects.exists()


def test_duplicate_key_is_400(api, make_segment):
    make_segment("pro", PRO)

    response = api.post(URL, {"key": "pro", "name": "Again", "filter": PRO})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "key"


def test_self_reference_is_refused(api, make_segment):
    make_segment("a", PRO)
    make_segment("b", {"in_segment": "a"})

    response = api.patch(f"{URL}/a", {"filter": {"in_segment": "b"}})

    assert response.status_code == 400
    assert "itself" in response.json()["error"]["message"]
    assert Segment.objects.get(key="a").filter == PRO


def test_list_retrieve_update_delete(api, pros, make_segment):
    make_segment("pro", PRO)
    make_segment("vip", kind="static")

    listed = api.get(URL).json()["results"]
    assert {s["key"] for s in listed} == {"pro", "vip"}

    response = api.patch(
        f"{URL}/pro", {"name": "Free plan", "filter_text": 'traits.plan is "free"'}
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Free plan"
    assert members("pro") == {"free-0"}  # recomputed after the commit

    bad = api.patch(f"{URL}/pro", {"filter": {"property": "traits.plan", "operator": "is"}})
    assert bad.status_code == 400
    assert Segment.objects.get(key="pro").filter["value"] == "free"  # unchanged

    assert api.delete(f"{URL}/pro").status_code == 204
    assert api.get(f"{URL}/pro").status_code == 404
    assert not SegmentMembership.objects.filter(segment__key="pro").exists()


def test_a_segment_used_by_another_cannot_be_deleted(api, make_segment):
    make_segment("pro", PRO)
    make_segment("pro-too", {"in_segment": "pro"})

    response = api.delete(f"{URL}/pro")

    assert response.status_code == 409
    assert "pro-too" in response.json()["error"]["message"]


def test_unknown_segment_is_404(api):
    assert api.get(f"{URL}/nope").status_code == 404
    assert api.get(f"{URL}/nope/members").status_code == 404


def test_preview_counts_and_samples_without_saving(api, pros):
    response = api.post(f"{URL}/preview", {"filter_text": 'traits.plan is "pro"'})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3
    assert {p["id"] for p in body["sample"]} == {str(p.pk) for p in pros}
    assert body["filter"] == PRO
    assert not Segment.objects.exists()
    assert not SegmentMembership.objects.exists()


def test_preview_samples_ten(api, people):
    for n in range(12):
        people.people(f"p{n}", set={"plan": "pro"})

    body = api.post(f"{URL}/preview", {"filter": PRO}).json()

    assert body["count"] == 12
    assert len(body["sample"]) == 10


def test_preview_errors(api):
    bad = api.post(f"{URL}/preview", {"filter": {"or": []}})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"].startswith("filter")
    assert api.post(f"{URL}/preview", {}).status_code == 400


def test_members_are_paginated(api, people, make_segment):
    for n in range(5):
        people.people(f"m{n}", set={"plan": "pro"})
    make_segment("pro", PRO)

    first = api.get(f"{URL}/pro/members", {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    pages = [first, second, third]
    seen = [m["profile"]["id"] for page in pages for m in page["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert third["next"] is None
    assert {"profile", "entered_at"} <= set(first["results"][0])


@pytest.mark.parametrize("how", ["query", "accept"])
def test_members_csv_export(api_client, pros, make_segment, how):
    make_segment("pro", PRO)

    if how == "query":
        response = api_client.get(f"{URL}/pro/members", {"format": "csv"})
    else:
        response = api_client.get(f"{URL}/pro/members", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "pro-members.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["profile_id", "distinct_ids", "entered_at", "email"]
    assert {r[1] for r in rows[1:]} == {"pro-0", "pro-1", "pro-2"}
    assert {r[3] for r in rows[1:]} == {"pro0@example.com", "pro1@example.com", "pro2@example.com"}


def test_static_members_add_and_remove_by_distinct_ids(api, pros, make_segment):
    make_segment("vip", kind="static")

    added = api.post(f"{URL}/vip/members", {"distinct_ids": ["pro-0", "pro-1", "ghost"]})
    assert added.status_code == 200, added.content
    assert added.json() == {"changed": 2, "unknown": ["ghost"]}
    assert members("vip") == {"pro-0", "pro-1"}

    again = api.post(
        f"{URL}/vip/members", {"distinct_ids": ["pro-0"], "emails": ["PRO2@example.com"]}
    )
    assert again.json() == {"changed": 1, "unknown": []}
    assert members("vip") == {"pro-0", "pro-1", "pro-2"}

    removed = api.delete(f"{URL}/vip/members", {"distinct_ids": ["pro-1"]})
    assert removed.json() == {"changed": 1, "unknown": []}
    assert members("vip") == {"pro-0", "pro-2"}
    assert api.get(f"{URL}/vip").json()["member_count"] == 2


def test_static_member_changes_validate(api, make_segment):
    make_segment("vip", kind="static")
    make_segment("pro", PRO)

    assert api.post(f"{URL}/vip/members", {}).status_code == 400
    assert api.post(f"{URL}/vip/members", {"distinct_ids": "x"}).status_code == 400
    dynamic = api.post(f"{URL}/pro/members", {"distinct_ids": ["x"]})
    assert dynamic.status_code == 400
    assert dynamic.json()["error"]["code"] == "not_static"


def test_the_profile_endpoint_lists_its_segments(api, pros, make_segment):
    make_segment("pro", PRO, name="Pro plan")
    make_segment("vip", kind="static")
    api.post(f"{URL}/vip/members", {"distinct_ids": ["pro-0"]})

    body = api.get(f"/api/v1/profiles/{pros[0].pk}").json()

    assert [(s["key"], s["name"]) for s in body["segments"]] == [
        ("pro", "Pro plan"),
        ("vip", "Vip"),
    ]
    assert api.get(f"/api/v1/profiles/{pros[1].pk}").json()["segments"][0]["key"] == "pro"


def test_needs_a_token(client, make_segment):
    assert client.get(URL).status_code in (401, 403)
