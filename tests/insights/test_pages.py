"""The dashboard pages on demo activity sent through the tracking endpoint: what a marketer
sees, builds, saves and exports."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client, TestCase

from apps.events.models import Event
from apps.insights.models import Dashboard, DashboardItem, SavedInsight
from apps.profiles.models import Profile
from apps.segments.models import Segment

FUNNEL = (
    "/funnels/?step=page_view&step=signed_up&step=completed_onboarding"
    "&window_value=14&window_unit=day&mode=ordered&date_from=-30d"
)
RETENTION = "/retention/?start_event=signed_up&return_event=*&period=day&periods=5&date_from=-10d"
TRENDS = "/trends/?event=page_view&math=total&interval=day&date_from=-30d"


def spec(response: Any, name: str = "insight-chart") -> dict[str, Any]:
    body = response.content.decode()
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', body, re.S)
    assert found, f"no chart {name} on the page"
    return json.loads(found.group(1))


def text(response: Any) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_home_compares_periods_and_lists_what_happened(marketer_client, demo_data):
    response = marketer_client.get("/")
    assert response.status_code == 200
    body = text(response)
    assert "Active people · 7 days" in body
    active = spec(response, "active")
    assert [s["name"] for s in active["series"]] == [
        "Daily active",
        "Weekly active",
        "Monthly active",
    ]
    people = Profile.objects.filter(merged_into=None, event_count__gt=0).count()
    assert people > 10
    assert max(active["series"][2]["data"]) == people
    assert "page_view" in body
    assert "Active in the last 7 days" in body


def test_the_live_stream_returns_only_newer_events(marketer_client, demo_data, tracker):
    last = Event.objects.filter(platform=False).order_by("-id").first()
    first = marketer_client.get(f"/live/?after={last.id}", HTTP_HX_REQUEST="true")
    assert first.status_code == 200
    assert "data-event-id" not in text(first)
    tracker.post({"event_name": "watched_demo", "distinct_id": "late-visitor"})
    polled = text(marketer_client.get(f"/live/?after={last.id}", HTTP_HX_REQUEST="true"))
    assert "watched_demo" in polled
    newest = Event.objects.filter(platform=False).order_by("-id").first()
    assert f"after={newest.id}" in polled  # the next poll starts after it


def test_trends_chart_table_and_breakdown(marketer_client, demo_data):
    views = Event.objects.filter(event_name="page_view").count()
    response = marketer_client.get(TRENDS)
    chart = spec(response)
    assert chart["total"] == views
    assert chart["x"]
    by_path = spec(marketer_client.get(TRENDS + "&breakdown_type=event&breakdown_key=path"))
    names = {s["name"] for s in by_path["series"]}
    assert "page_view - /" in names
    assert sum(sum(s["data"]) for s in by_path["series"]) == views


def test_trends_compare_adds_the_previous_period(marketer_client, demo_data):
    chart = spec(marketer_client.get(TRENDS.replace("-30d", "-3d") + "&compare=1"))
    assert any(s["name"].endswith("(previous period)") and s["dashed"] for s in chart["series"])


def test_a_bad_filter_is_shown_inline_with_its_reason(marketer_client, demo_data):
    response = marketer_client.get(TRENDS + "&filter=properties.plan+is+%22pro%22")
    assert response.status_code == 400
    assert "unknown path root" in text(response)
    assert 'id="query-error"' in text(response)


def test_funnel_steps_and_the_people_behind_them(marketer_client, demo_data):
    response = marketer_client.get(FUNNEL)
    assert response.status_code == 200
    chart = spec(response)
    assert chart["x"][0] == "1. page_view"
    assert chart["series"][0]["data"][0] == 100.0
    signed_up = (
        Event.objects.filter(event_name="signed_up").values("distinct_id").distinct().count()
    )
    people_url = re.search(r'hx-get="([^"]+at_step=1&(?:amp;)?status=converted)"', text(response))
    assert people_url
    panel = marketer_client.get(people_url.group(1).replace("&amp;", "&"))
    assert panel.status_code == 200
    links = set(re.findall(r'href="/people/([0-9a-f-]{36})/"', text(panel)))
    assert len(links) == signed_up


def test_retention_heatmap_and_a_cell_s_people(marketer_client, demo_data):
    response = marketer_client.get(RETENTION)
    chart = spec(response)
    assert chart["type"] == "heatmap"
    assert chart["cells"]
    first_cohort = re.search(r'hx-get="([^"]+cohort=0&(?:amp;)?at_period=0)"', text(response))
    assert first_cohort
    panel = text(marketer_client.get(first_cohort.group(1).replace("&amp;", "&")))
    size = int(chart["y"][0].split("(")[1].rstrip(")"))
    assert len(set(re.findall(r'href="/people/([0-9a-f-]{36})/"', panel))) == size


def test_paths_sankey(marketer_client, demo_data):
    chart = spec(marketer_client.get("/paths/?go=1&start_point=/&steps=3&date_from=-30d"))
    assert chart["type"] == "sankey"
    assert chart["links"]
    assert all(link["value"] > 0 for link in chart["links"])


def test_csv_export_of_an_insight_table(marketer_client, demo_data):
    response = marketer_client.get("/insights/trends/export.csv?" + TRENDS.split("?", 1)[1])
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text(response))))
    assert rows[0][:2] == ["Series", "Total"]
    assert int(float(rows[1][1])) == Event.objects.filter(event_name="page_view").count()
    bad = marketer_client.get("/insights/trends/export.csv?event=page_view&interval=fortnight")
    assert bad.status_code == 400


def test_save_reopen_and_share_an_insight(marketer_client, marketer, demo_data):
    query_string = FUNNEL.split("?", 1)[1]
    response = marketer_client.post(
        "/insights/funnel/save/", {"name": "Signup funnel", "query_string": query_string}
    )
    assert response.status_code == 302
    saved = SavedInsight.objects.get()
    assert (saved.name, saved.kind, saved.owner) == ("Signup funnel", "funnel", marketer)
    assert [s["event"] for s in saved.query["steps"]] == [
        "page_view",
        "signed_up",
        "completed_onboarding",
    ]
    assert saved.query["date_from"] == "-30d"  # relative dates stay relative
    for url in (f"/saved/{saved.pk}/", f"/s/{saved.share_key}/"):
        reopened = marketer_client.get(url)
        assert reopened.status_code == 302
        params = parse_qs(urlsplit(reopened["Location"]).query)
        assert params["step"] == ["page_view", "signed_up", "completed_onboarding"]
        page = marketer_client.get(reopened["Location"])
        assert "Signup funnel" in text(page)
        assert spec(page)["x"][2] == "3. completed_onboarding"


def test_saving_without_a_name_or_with_a_broken_query_stores_nothing(marketer_client, demo_data):
    query_string = TRENDS.split("?", 1)[1]
    nameless = marketer_client.post(
        "/insights/trends/save/", {"name": " ", "query_string": query_string}
    )
    assert nameless.status_code == 400
    assert "name" in text(nameless)
    broken = marketer_client.post(
        "/insights/trends/save/", {"name": "x", "query_string": "event=page_view&interval=decade"}
    )
    assert broken.status_code == 400
    assert "interval" in text(broken)
    assert not SavedInsight.objects.exists()


def test_dashboard_grid_of_saved_insights(marketer_client, marketer, demo_data):
    trend = SavedInsight.objects.create(
        name="Views",
        kind="trends",
        owner=marketer,
        query={"series": [{"event": "page_view"}], "date_from": "-30d"},
    )
    funnel = SavedInsight.objects.create(
        name="Signup",
        kind="funnel",
        owner=marketer,
        query={"steps": [{"event": "page_view"}, {"event": "signed_up"}], "date_from": "-30d"},
    )
    created = marketer_client.post("/dashboards/new/", {"name": "Growth"})
    dashboard = Dashboard.objects.get(name="Growth")
    assert created["Location"] == f"/dashboards/{dashboard.pk}/"
    for saved in (trend, funnel):
        marketer_client.post("/dashboards/add/", {"dashboard": dashboard.pk, "insight": saved.pk})
    marketer_client.post("/dashboards/add/", {"dashboard": dashboard.pk, "insight": trend.pk})
    assert list(dashboard.items.values_list("insight__name", flat=True)) == ["Views", "Signup"]
    page = marketer_client.get(f"/dashboards/{dashboard.pk}/")
    tiles = [spec(page, f"tile-{item.pk}") for item in dashboard.items.all()]
    assert tiles[0]["type"] == "line"
    assert tiles[1]["type"] == "funnel"
    second = dashboard.items.get(insight=funnel)
    marketer_client.post(f"/dashboards/{dashboard.pk}/tiles/{second.pk}/", {"action": "up"})
    assert list(dashboard.items.values_list("insight__name", flat=True)) == ["Signup", "Views"]
    marketer_client.post(f"/dashboards/{dashboard.pk}/tiles/{second.pk}/", {"action": "width"})
    assert DashboardItem.objects.get(pk=second.pk).width == 2
    marketer_client.post(f"/dashboards/{dashboard.pk}/tiles/{second.pk}/", {"action": "remove"})
    assert list(dashboard.items.values_list("insight__name", flat=True)) == ["Views"]
    shared = marketer_client.get(f"/d/{dashboard.share_key}/")
    assert shared.status_code == 200
    assert "Views" in text(shared)


def test_people_search_and_profile_journey(marketer_client, demo_data):
    person = Profile.objects.filter(identified=True, merged_into=None).first()
    user_id = person.identities.get(kind="user_id").distinct_id
    found = text(marketer_client.get(f"/people/?q={user_id}"))
    assert f"/people/{person.pk}/" in found
    by_trait = text(marketer_client.get(f"/people/?q=country={person.traits['country']}"))
    assert f"/people/{person.pk}/" in by_trait
    page = text(marketer_client.get(f"/people/{person.pk}/"))
    assert "signed_up" in page
    assert "Session " in page
    only = text(
        marketer_client.get(f"/people/{person.pk}/?event=signed_up", HTTP_HX_REQUEST="true")
    )
    assert "signed_up" in only
    assert "page_view" not in only
    assert marketer_client.get("/people/not-a-uuid/").status_code == 404


def test_segment_pages_create_through_the_segments_service(marketer_client, demo_data):
    bad = marketer_client.post(
        "/segments/new/",
        {"key": "pros", "name": "Pros", "kind": "dynamic", "filter_text": "traits.plan iz 1"},
    )
    assert bad.status_code == 400
    assert "unknown operator" in text(bad)
    assert not Segment.objects.filter(key="pros").exists()
    preview = text(marketer_client.get('/segments/preview/?filter_text=traits.plan+is+"free"'))
    expected = Profile.objects.filter(merged_into=None, traits__plan="free").count()
    assert f'id="preview-count">{expected}<' in preview
    with TestCase.captureOnCommitCallbacks(execute=True):  # the recompute runs on commit
        ok = marketer_client.post(
            "/segments/new/",
            {
                "key": "free",
                "name": "Free",
                "kind": "dynamic",
                "filter_text": 'traits.plan is "free"',
            },
        )
    assert ok.status_code == 302
    segment = Segment.objects.get(key="free")
    assert segment.member_count == expected
    page = marketer_client.get("/segments/free/")
    assert spec(page, "segment-size")["series"][0]["data"][-1] == expected
    edit = marketer_client.post(
        "/segments/free/edit/",
        {"name": "Free plan", "kind": "dynamic", "filter_text": 'traits.plan is "free"'},
    )
    assert edit.status_code == 302
    assert Segment.objects.get(key="free").name == "Free plan"


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.example")


@pytest.mark.parametrize("who", ["marketer_client", "viewer_client"])
def test_no_email_reaches_a_user_without_the_pii_permission(request, who, demo_data):
    client: Client = request.getfixturevalue(who)
    person = Profile.objects.filter(identified=True, merged_into=None).first()
    assert person.private_traits.get("email")
    urls = [
        "/",
        "/live/",
        "/people/",
        "/people/?format=csv",
        f"/people/{person.pk}/",
        FUNNEL.replace("/funnels/", "/insights/funnel/people/") + "&at_step=0",
        FUNNEL.replace("/funnels/", "/insights/funnel/people/") + "&at_step=0&format=csv",
        '/segments/preview/?filter_text=traits.plan+is+"free"',
        "/segments/activated/",
        "/segments/activated/?format=csv",
    ]
    for url in urls:
        body = text(client.get(url))
        assert not EMAIL.search(body), f"{url} shows an email"
        assert person.private_traits["name"] not in body, f"{url} shows a name"
    # Searching by a private trait finds nobody for them (it would reveal the trait).
    search = text(client.get("/people/", {"q": person.private_traits["email"]}))
    assert f"/people/{person.pk}/" not in search
    private_filter = client.get(TRENDS + "&filter=private_traits.email+is_set")
    assert private_filter.status_code == 400


def test_an_admin_sees_the_private_traits(admin_client_role, demo_data):
    person = Profile.objects.filter(identified=True, merged_into=None).first()
    assert person.private_traits["email"] in text(admin_client_role.get(f"/people/{person.pk}/"))
    assert EMAIL.search(text(admin_client_role.get("/people/?format=csv")))


def test_every_table_of_the_home_page_exports_to_csv(marketer_client, viewer_client, demo_data):
    top = list(csv.reader(io.StringIO(text(marketer_client.get("/?export=top_events")))))
    assert top[0] == ["event", "events", "people"]
    page_views = Event.objects.filter(event_name="page_view").count()
    assert any(r[0] == "page_view" and 0 < int(r[1]) <= page_views for r in top[1:])
    active = list(csv.reader(io.StringIO(text(marketer_client.get("/?export=active")))))
    assert active[0] == ["day", "Daily active", "Weekly active", "Monthly active"]
    assert len(active) == 31
    newest = text(viewer_client.get("/?export=newest"))
    assert newest.startswith("profile_id,person,first_seen,events")
    assert not EMAIL.search(newest)
    segments = text(marketer_client.get("/?export=segments"))
    assert "activated,Activated users," in segments
    assert marketer_client.get("/?export=passwords").status_code == 404


def test_a_chart_without_other_views_still_has_its_table(marketer_client, demo_data):
    body = text(marketer_client.get("/segments/activated/"))
    assert 'data-view="table"' in body
    assert 'class="table-view' in body


def test_the_profile_shows_its_scores_to_those_who_may_see_scores(marketer_client, demo_data):
    from apps.segments.models import ProfileScore, ScoreDefinition
    from tests.factories import logged_in
    from tests.users import user_with_perms

    person = Profile.objects.filter(identified=True, merged_into=None).first()
    churn = ScoreDefinition.objects.create(name="churn_risk", target_event="churned")
    ProfileScore.objects.create(definition=churn, profile=person, value=0.724)
    page = text(marketer_client.get(f"/people/{person.pk}/"))
    assert "churn_risk" in page
    assert "72%" in page  # the bar's label and its length
    assert 'style="width:72%"' in marketer_client.get(f"/people/{person.pk}/").content.decode()

    profiles_only = user_with_perms("profiles.view_profile", username="reader", staff=False)
    page = text(logged_in(profiles_only).get(f"/people/{person.pk}/"))
    assert "churn_risk" not in page
