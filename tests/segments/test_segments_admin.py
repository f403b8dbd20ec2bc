"""The segments admin: pages render, the filter editor (JSON or text) validates inline, the
change page previews, the preview page saves nothing, CSV upload, the recompute action."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from apps.segments.models import Segment, SegmentMembership
from tests.factories import PRO, members

ADMIN = "/admin/segments/segment/"


@pytest.fixture
def pros(people):
    for n in range(3):
        people.people(f"pro-{n}", set={"plan": "pro", "email": f"Pro{n}@Example.com"})
    people.people("free-0", set={"plan": "free"})


def _post(admin_client, url, data, **kwargs):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return admin_client.post(url, data, **kwargs)


def _form(**fields):
    return {
        "key": "pro",
        "name": "Pro",
        "description": "",
        "kind": "dynamic",
        "filter": "",
        "filter_text": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "0",
        **fields,
    }


def test_pages_render(admin_client, pros, make_segment):
    segment = make_segment("pro", PRO)
    make_segment("vip", kind="static")

    for url in (
        ADMIN,
        f"{ADMIN}add/",
        f"{ADMIN}{segment.pk}/change/",
        f"{ADMIN}preview/",
        f"{ADMIN}{Segment.objects.get(key='vip').pk}/upload/",
        "/admin/segments/segmentmembership/",
        "/admin/segments/segmentmembership/?current=yes",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_change_page_shows_count_preview_text_form_and_members(admin_client, pros, make_segment):
    segment = make_segment("pro", PRO)

    page = admin_client.get(f"{ADMIN}{segment.pk}/change/").content.decode()

    assert "<strong>3</strong> profile(s) match now" in page
    assert "traits.plan is &quot;pro&quot;" in page  # the text form, filled in
    assert "3 current members" in page
    assert "Preview a filter" in page


def test_add_with_the_text_form(admin_client, pros):
    response = _post(admin_client, f"{ADMIN}add/", _form(filter_text='traits.plan is "pro"'))

    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Segment.objects.get(key="pro").filter == PRO
    assert members("pro") == {"pro-0", "pro-1", "pro-2"}


def test_add_with_json(admin_client, pros):
    response = _post(admin_client, f"{ADMIN}add/", _form(filter=json.dumps(PRO)))

    assert response.status_code == 302
    assert Segment.objects.get(key="pro").member_count == 3


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"filter_text": "traits.plan is"}, "position"),
        ({"filter": json.dumps({"and": [PRO, {"property": "x.y", "operator": "is"}]})}, "and[1]"),
        ({"filter": "{not json"}, "valid JSON"),
        ({"filter": ""}, "needs a filter"),
        ({"key": "preview", "filter": json.dumps(PRO)}, "reserved"),
    ],
)
def test_validation_errors_are_shown_inline(admin_client, fields, words):
    response = _post(admin_client, f"{ADMIN}add/", _form(**fields))

    assert response.status_code == 200
    assert words in response.content.decode()
    assert response.context["adminform"].form.errors
    assert not Segment.objects.exists()


def test_edit_the_filter_through_the_text_form(admin_client, pros, make_segment):
    segment = make_segment("pro", PRO)

    response = _post(
        admin_client,
        f"{ADMIN}{segment.pk}/change/",
        _form(filter=json.dumps(PRO), filter_text='traits.plan is "free"'),
    )

    assert response.status_code == 302
    assert members("pro") == {"free-0"}


def test_preview_page_counts_without_saving(admin_client, pros):
    response = admin_client.post(f"{ADMIN}preview/", {"filter_text": 'traits.plan is "pro"'})

    assert response.status_code == 200
    assert "<strong>3</strong> profile(s) match now" in response.content.decode()
    assert not Segment.objects.exists()

    bad = admin_client.post(f"{ADMIN}preview/", {"filter_text": "traits.plan is ("})
    assert bad.status_code == 200
    assert bad.context["form"].errors["filter_text"]


def test_csv_upload_adds_members_and_reports_unknown_rows(admin_client, pros, make_segment):
    segment = make_segment("vip", kind="static")
    upload = SimpleUploadedFile(
        "members.csv", b"email\npro0@example.com\nPRO1@example.com\nnobody@example.com\n\n"
    )

    response = _post(
        admin_client,
        f"{ADMIN}{segment.pk}/upload/",
        {"file": upload, "column": "auto", "action": "add"},
        follow=True,
    )

    assert response.status_code == 200
    assert members("vip") == {"pro-0", "pro-1"}
    text = response.content.decode()
    assert "3 row(s) read; 2 profile(s) added" in text
    assert "row 4: nobody@example.com" in text


def test_csv_upload_of_distinct_ids_without_header_and_remove(admin_client, pros, make_segment):
    segment = make_segment("vip", kind="static")
    url = f"{ADMIN}{segment.pk}/upload/"
    _post(
        admin_client,
        url,
        {
            "file": SimpleUploadedFile("a.csv", b"pro-0\npro-2\nghost\n"),
            "column": "distinct_id",
            "action": "add",
        },
    )
    assert members("vip") == {"pro-0", "pro-2"}

    _post(
        admin_client,
        url,
        {"file": SimpleUploadedFile("b.csv", b"pro-0\n"), "column": "auto", "action": "remove"},
    )
    assert members("vip") == {"pro-2"}


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00bad", b"distinct_id\n"])
def test_bad_uploads_are_form_errors(admin_client, make_segment, content):
    segment = make_segment("vip", kind="static")

    response = admin_client.post(
        f"{ADMIN}{segment.pk}/upload/",
        {"file": SimpleUploadedFile("x.csv", content), "column": "auto", "action": "add"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors
    assert not SegmentMembership.objects.exists()


def test_upload_to_a_dynamic_segment_is_refused(admin_client, make_segment):
    segment = make_segment("pro", PRO)

    response = admin_client.get(f"{ADMIN}{segment.pk}/upload/", follow=True)

    assert "Only static segments" in response.content.decode()


def test_recompute_action(admin_client, pros, make_segment):
    segment = make_segment("pro", PRO)
    make_segment("vip", kind="static")
    SegmentMembership.objects.all().delete()

    response = _post(
        admin_client,
        ADMIN,
        {
            "action": "recompute",
            "_selected_action": list(Segment.objects.values_list("pk", flat=True)),
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "Pro: 3 members (3 entered, 0 exited)" in response.content.decode()
    assert members("pro") == {"pro-0", "pro-1", "pro-2"}
    assert Segment.objects.get(pk=segment.pk).member_count == 3


def test_delete_a_segment_in_use_is_refused(admin_client, make_segment):
    pro = make_segment("pro", PRO)
    make_segment("pro-too", {"in_segment": "pro"})

    response = admin_client.post(f"{ADMIN}{pro.pk}/delete/", {"post": "yes"}, follow=True)

    assert "used by the filter of pro-too" in response.content.decode()
    assert Segment.objects.filter(key="pro").exists()


def test_each_segment_shows_its_own_latest_members(admin_client, people, make_segment):
    """Another segment's newer memberships must not push this segment's members off its page."""
    for n in range(3):
        people.people(f"early-{n}", set={"plan": "pro"})
    pro = make_segment("pro", PRO)
    for n in range(60):
        people.people(f"later-{n}", set={"plan": "free"})
    make_segment("free", {"property": "traits.plan", "operator": "is", "value": "free"})

    page = admin_client.get(f"{ADMIN}{pro.pk}/change/").content.decode()

    shown = [
        m.profile_id
        for m in SegmentMembership.objects.filter(segment=pro)
        if str(m.profile_id) in page
    ]
    assert len(shown) == 3
