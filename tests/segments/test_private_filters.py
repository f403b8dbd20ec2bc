"""Filters on private traits are refused (403, naming the permission) to users who may not
see them: a preview count per guessed character would otherwise spell the value out."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.segments.filtering import filter_references_private
from apps.segments.models import Segment
from tests.users import client_with_perms, user_with_perms

pytestmark = pytest.mark.django_db
PRIVATE = "profiles.view_private_traits"
READER = ("segments.view_segment", "profiles.view_profile")
GUESS = {"property": "private_traits.email", "operator": "starts_with", "value": "a"}


@pytest.fixture
def ann(tracker: Any) -> None:
    response = tracker.post(
        {"distinct_id": "ann", "private_traits": {"email": "ann@example.com"}},
        path="/api/identify",
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("tree", "private"),
    [
        (GUESS, True),
        ({"not": GUESS}, True),
        ({"or": [{"property": "traits.plan", "operator": "is_set"}, GUESS]}, True),
        (
            {
                "performed": "$identify",
                "where": {
                    "property": 'event.properties."$set_private".email',
                    "operator": "is_set",
                },
            },
            True,
        ),
        ({"property": "traits.email", "operator": "is_set"}, False),
        (
            {
                "performed": "signup",
                "where": {"property": "event.properties.plan", "operator": "is_set"},
            },
            False,
        ),
        (None, False),
    ],
)
def test_filters_on_private_traits_are_recognized(tree: Any, private: bool) -> None:
    assert filter_references_private(tree) is private


@pytest.mark.parametrize(
    "body",
    [{"filter": GUESS}, {"filter_text": 'private_traits.email starts_with "a"'}],
    ids=["json", "text"],
)
def test_preview_on_private_traits_needs_the_permission(ann: None, body: dict[str, Any]) -> None:
    refused = client_with_perms(*READER).post("/api/v1/segments/preview", body, format="json")
    allowed = client_with_perms(*READER, PRIVATE).post(
        "/api/v1/segments/preview", body, format="json"
    )

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "permission_denied"
    assert PRIVATE in error["message"]
    assert "count" not in refused.json()
    assert allowed.status_code == 200
    assert allowed.json()["count"] == 1


def test_create_and_update_on_private_traits_need_the_permission(make_segment: Any) -> None:
    make_segment("pros", {"property": "traits.plan", "operator": "is_set"})
    editor = client_with_perms("segments.add_segment", "segments.change_segment")

    created = editor.post(
        "/api/v1/segments", {"key": "guess", "name": "g", "filter": GUESS}, format="json"
    )
    updated = editor.patch("/api/v1/segments/pros", {"filter": GUESS}, format="json")

    assert (created.status_code, updated.status_code) == (403, 403)
    assert list(Segment.objects.values_list("key", flat=True)) == ["pros"]
    assert Segment.objects.get().filter["property"] == "traits.plan"


def test_the_admin_preview_refuses_a_filter_on_private_traits(ann: None) -> None:
    client = Client()
    client.force_login(user_with_perms("segments.view_segment"))
    allowed = Client()
    allowed.force_login(user_with_perms("segments.view_segment", PRIVATE))
    shown = allowed.post(
        "/admin/segments/segment/preview/",
        {"filter_text": 'private_traits.email starts_with "a"'},
    )
    assert "/admin/profiles/profile/" in shown.content.decode()

    page = client.post(
        "/admin/segments/segment/preview/",
        {"filter_text": 'private_traits.email starts_with "a"'},
    )

    assert page.status_code == 200
    content = page.content.decode()
    assert PRIVATE in content
    assert "/admin/profiles/profile/" not in content  # no sample of matching profiles


def test_values_compared_to_private_traits_are_hidden_in_the_api(make_segment: Any) -> None:
    make_segment(
        "ann",
        {
            "and": [
                {"property": "private_traits.email", "operator": "is", "value": "ann@example.com"},
                {"property": "traits.plan", "operator": "is", "value": "pro"},
            ]
        },
    )

    hidden = client_with_perms("segments.view_segment").get("/api/v1/segments/ann")
    shown = client_with_perms("segments.view_segment", PRIVATE).get("/api/v1/segments/ann")

    assert hidden.status_code == 200
    assert "ann@example.com" not in hidden.content.decode()
    assert hidden.json()["filter"]["and"][1]["value"] == "pro"
    assert "ann@example.com" in shown.json()["filter_text"]
