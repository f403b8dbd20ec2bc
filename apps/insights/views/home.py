"""The home page (activity against the previous period, active people, top events, newest
profiles, segment sizes) and the live event stream, polled by htmx."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from apps.insights import selectors
from apps.insights.views.access import labelled, page, sees_private
from apps.insights.views.export import csv_response
from apps.segments.selectors import primary_distinct_ids

LIVE_POLL_SECONDS = 3
CHART_VIEWS = ["line", "area", "bar"]


@page()
def home(request: HttpRequest) -> HttpResponseBase:
    user = request.user
    private = sees_private(request)
    export = request.GET.get("export", "")
    if export:
        return _export(request, export, private=private)
    context: dict = {
        "can_events": user.has_perm("events.view_event"),
        "chart_views": CHART_VIEWS,
        "private": private,
    }
    if context["can_events"]:
        context["periods"] = selectors.home_periods()
        context["active_chart"] = selectors.active_users_series()
        context["top_events"] = selectors.top_events()
        context["live"] = _live_rows(request, selectors.live_events(limit=15))
        context["poll_seconds"] = LIVE_POLL_SECONDS
        top = context["top_events"]
        context["top_chart"] = {
            "type": "bar",
            "x": [row["event_name"] for row in top],
            "series": [{"name": "Events, 7 days", "data": [row["count"] for row in top]}],
            "description": "The most frequent events of the last 7 days.",
        }
    if user.has_perm("profiles.view_profile"):
        newest = selectors.newest_profiles()
        context["newest"] = labelled(
            newest, private=private, distinct_ids=primary_distinct_ids(p.pk for p in newest)
        )
    if user.has_perm("segments.view_segment"):
        context["segments"] = selectors.segment_sizes()
    return render(request, "insights/home.html", context)


def _live_rows(request: HttpRequest, events: list) -> dict:
    return {
        "events": events,
        "last_id": max((e.id for e in events), default=_after(request) or 0),
    }


def _after(request: HttpRequest) -> int | None:
    raw = request.GET.get("after", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


@page("events.view_event")
def live(request: HttpRequest) -> HttpResponseBase:
    """The live stream page; with htmx (`after`): only the rows newer than `after`."""
    after = _after(request)
    if request.htmx and after is not None:  # type: ignore[attr-defined]
        rows = _live_rows(request, selectors.live_events(after=after, limit=50))
        return render(
            request,
            "insights/partials/live_rows.html",
            {"live": rows, "new": True, "private": sees_private(request)},
        )
    rows = _live_rows(request, selectors.live_events(limit=50))
    return render(
        request,
        "insights/live.html",
        {"live": rows, "poll_seconds": LIVE_POLL_SECONDS, "private": sees_private(request)},
    )


def _export(request: HttpRequest, table: str, *, private: bool) -> HttpResponseBase:
    """The CSV of one of the home page's tables, with the permission that table needs."""
    if table == "active" and request.user.has_perm("events.view_event"):
        series = selectors.active_users_series()
        header = ["day", *[s["name"] for s in series["series"]]]
        return csv_response(name="active-people", header=header, rows=series["rows"])
    if table == "top_events" and request.user.has_perm("events.view_event"):
        rows = [[r["event_name"], r["count"], r["people"]] for r in selectors.top_events()]
        return csv_response(name="top-events", header=["event", "events", "people"], rows=rows)
    if table == "newest" and request.user.has_perm("profiles.view_profile"):
        newest = selectors.newest_profiles()
        people = labelled(
            newest, private=private, distinct_ids=primary_distinct_ids(p.pk for p in newest)
        )
        return csv_response(
            name="newest-people",
            header=["profile_id", "person", "first_seen", "events"],
            rows=[
                [
                    p.pk,
                    getattr(p, "label", ""),
                    p.first_seen.isoformat() if p.first_seen else "",
                    p.event_count,
                ]
                for p in people
            ],
        )
    if table == "segments" and request.user.has_perm("segments.view_segment"):
        rows = [[s.key, s.name, s.member_count] for s in selectors.segment_sizes()]
        return csv_response(name="segments", header=["key", "name", "members"], rows=rows)
    raise Http404("No such table")
