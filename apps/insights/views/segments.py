"""Segments: the list with sizes, a segment's page (size over time, members, membership
history), and create/edit in the filter language's text form with a live preview. Writes go
through the segments app's services, as its API does."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.insights import selectors
from apps.insights.views.access import labelled, page, require, sees_private
from apps.insights.views.export import csv_response
from apps.segments import selectors as segment_selectors
from apps.segments import services as segment_services
from apps.segments.filtering import to_text
from apps.segments.models import Segment, SegmentKind
from cdp.errors import DomainError

MAX_FILTER_TEXT = 20_000
RESERVED_KEYS = frozenset({"new", "preview"})
MEMBERS_SHOWN = 25


def _segment(key: str) -> Segment:
    try:
        return segment_selectors.segment_get(key)
    except DomainError:
        raise Http404("No such segment") from None


@page("segments.view_segment")
def segment_list(request: HttpRequest) -> HttpResponseBase:
    segments = list(segment_selectors.segment_list().order_by("name")[:500])
    return render(request, "insights/segment_list.html", {"segments": segments})


@page("segments.view_segment", "segments.view_segmentmembership")
def segment_detail(request: HttpRequest, key: str) -> HttpResponseBase:
    segment = _segment(key)
    private = sees_private(request)
    if request.GET.get("format") == "csv":
        return csv_response(
            name=f"segment-{segment.key}",
            header=[],
            rows=list(segment_selectors.segment_members_csv_rows(segment, with_email=private)),
        )
    members = [
        m.profile
        for m in segment_selectors.segment_member_list(segment).order_by("-entered_at")[
            :MEMBERS_SHOWN
        ]
    ]
    history = selectors.segment_history(segment=segment)
    ids = segment_selectors.primary_distinct_ids(
        {p.pk for p in members} | {m.profile_id for m in history}
    )
    labelled(members, private=private, distinct_ids=ids)
    labelled([m.profile for m in history], private=private, distinct_ids=ids)
    context = {
        "segment": segment,
        "filter_text": to_text(segment.filter) if segment.filter else "",
        "members": members,
        "history": history,
        "size_chart": selectors.segment_size_series(segment=segment),
        "private": private,
    }
    return render(request, "insights/segment_detail.html", context)


@require_http_methods(["GET", "POST"])
@page("segments.view_segment")
def segment_edit(request: HttpRequest, key: str | None = None) -> HttpResponseBase:
    # The permission first: a 404 would tell a user who may not edit which segments exist.
    require(request, "segments.change_segment" if key else "segments.add_segment")
    segment = _segment(key) if key else None
    values: dict[str, Any] = {
        "key": segment.key if segment else "",
        "name": segment.name if segment else "",
        "description": segment.description if segment else "",
        "kind": segment.kind if segment else SegmentKind.DYNAMIC,
        "filter_text": to_text(segment.filter) if segment and segment.filter else "",
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        values.update(
            {
                name: request.POST.get(name, "").strip()
                for name in ("key", "name", "description", "kind", "filter_text")
            }
        )
        errors = _save(request, segment, values)
        if not errors:
            messages.success(request, f"Saved the segment “{values['name']}”.")
            return redirect(
                "insights:segment_detail", key=values["key"] if not segment else segment.key
            )
    status = 400 if errors else 200
    return render(
        request,
        "insights/segment_form.html",
        {"segment": segment, "values": values, "errors": errors, "kinds": SegmentKind.choices},
        status=status,
    )


def _save(request: HttpRequest, segment: Segment | None, values: dict[str, Any]) -> dict[str, str]:
    if not values["name"]:
        return {"name": "A segment needs a name"}
    if len(values["filter_text"]) > MAX_FILTER_TEXT:
        return {"filter_text": f"At most {MAX_FILTER_TEXT} characters"}
    dynamic = values["kind"] == SegmentKind.DYNAMIC
    filter_text = values["filter_text"] if dynamic else None
    try:
        if segment is None:
            if values["key"] in RESERVED_KEYS:
                return {"key": f"{values['key']!r} is reserved: pick another key"}
            segment_services.segment_create(
                key=values["key"],
                name=values["name"],
                description=values["description"],
                kind=values["kind"],
                filter_text=filter_text,
            )
        else:
            changes: dict[str, Any] = {
                "name": values["name"],
                "description": values["description"],
                "kind": values["kind"],
            }
            if dynamic:
                changes["filter_text"] = filter_text
            segment_services.segment_update(segment=segment, **changes)
    except DomainError as exc:
        field = (exc.field or "filter_text").split(".")[0]
        if field == "filter":
            field = "filter_text"
        return {field: exc.message}
    return {}


@page("segments.view_segment")
def segment_preview(request: HttpRequest) -> HttpResponseBase:
    """How many people the filter matches now, and a sample (htmx, as the filter is typed)."""
    text = request.GET.get("filter_text", "").strip()
    context: dict[str, Any] = {"private": sees_private(request)}
    if not text:
        context["hint"] = "Write a filter to see who it matches."
    elif len(text) > MAX_FILTER_TEXT:
        context["error"] = f"At most {MAX_FILTER_TEXT} characters"
    else:
        try:
            tree = segment_services.segment_filter_parse(filter_text=text)
        except DomainError as exc:
            context["error"] = exc.message
        else:
            preview = segment_selectors.segment_preview(tree)
            ids = segment_selectors.primary_distinct_ids(p.pk for p in preview.sample)
            context["count"] = preview.count
            context["sample"] = labelled(
                preview.sample, private=context["private"], distinct_ids=ids
            )
    return render(request, "insights/partials/segment_preview.html", context)
