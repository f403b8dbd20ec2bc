"""The insight pages (trends, funnels, retention, paths), their CSV export, and saving them.

The builder's fields are GET parameters: the page's URL is the exact query, shareable as is.
A saved insight stores the query (relative dates stay relative) and reopens as that URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.insights import selectors
from apps.insights.models import Dashboard, SavedInsight
from apps.insights.views import (  # noqa: F401  (each registers its kind)
    kind_funnel,
    kind_paths,
    kind_retention,
    kind_trends,
)
from apps.insights.views.access import labelled, page, require, sees_private
from apps.insights.views.access import owner as _owner
from apps.insights.views.export import csv_response
from apps.insights.views.kinds import KINDS, InsightPage
from apps.profiles.models import Profile
from apps.segments.selectors import primary_distinct_ids
from cdp.errors import DomainError

MAX_NAME = 200


def _kind(kind: str) -> InsightPage:
    found = KINDS.get(kind)
    if found is None:
        raise Http404("No such insight kind")
    return found


def insight_url(kind: str, query: dict[str, Any], saved: SavedInsight | None = None) -> str:
    params = _kind(kind).params_from_query(query)
    if saved is not None:
        params.append(("saved", str(saved.pk)))
    return f"{reverse('insights:' + kind)}?{urlencode(params)}"


def _reads_private(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_reads_private(v) for v in value.values())
    if isinstance(value, list):
        return any(_reads_private(v) for v in value)
    return isinstance(value, str) and "private_traits" in value


def evaluate(
    kind_page: InsightPage, query: dict[str, Any], *, private: bool = True
) -> dict[str, Any]:
    """Runs a query for a page: the chart spec and table, or the error to show inline. A user
    without the private traits permission can't filter on them (that would reveal them)."""
    if not private and _reads_private(query):
        return {
            "error": {
                "message": "Filters on private traits need the private traits permission",
                "field": "filter",
            }
        }
    try:
        result = kind_page.run(query)
    except DomainError as exc:
        return {"error": {"message": exc.message, "field": exc.field or ""}}
    outcome = {
        "result": result,
        "spec": kind_page.chart(result, query),
        "table": kind_page.table(result, query),
    }
    if hasattr(kind_page, "people"):
        params = urlencode(kind_page.params_from_query(query))
        outcome["people_url"] = (
            f"{reverse('insights:insight_people', args=[kind_page.kind])}?{params}"
        )
    return outcome


def _saved(request: HttpRequest) -> SavedInsight | None:
    raw = request.GET.get("saved", "")
    return SavedInsight.objects.filter(pk=raw).first() if raw.isdigit() else None


def _page(request: HttpRequest, kind: str) -> HttpResponseBase:
    kind_page = _kind(kind)
    params: QueryDict = request.GET
    context: dict[str, Any] = {
        "kind": kind,
        "title": kind_page.title,
        "views": kind_page.views,
        "choices": kind_page.choices,
        "form": kind_page.form(params),
        "event_names": selectors.event_names(),
        "saved": _saved(request),
        "query_string": params.urlencode(),
    }
    if kind_page.has_input(params):
        query = kind_page.query_from_params(params)
        context["query"] = query
        context.update(evaluate(kind_page, query, private=sees_private(request)))
        context["dashboards"] = (
            list(Dashboard.objects.order_by("name")[:100])
            if request.user.has_perm("insights.change_dashboard")
            else []
        )
    template = kind_page.template
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template = "insights/partials/insight_result.html"
    # A query that can't run is shown inline, on a 400 (htmx swaps it in all the same).
    return render(request, template, context, status=400 if "error" in context else 200)


@page("insights.view_savedinsight")
def trends(request: HttpRequest) -> HttpResponseBase:
    return _page(request, "trends")


@page("insights.view_savedinsight")
def funnel(request: HttpRequest) -> HttpResponseBase:
    return _page(request, "funnel")


@page("insights.view_savedinsight")
def retention(request: HttpRequest) -> HttpResponseBase:
    return _page(request, "retention")


@page("insights.view_savedinsight")
def paths(request: HttpRequest) -> HttpResponseBase:
    return _page(request, "paths")


@page("insights.view_savedinsight")
def insight_csv(request: HttpRequest, kind: str) -> HttpResponseBase:
    kind_page = _kind(kind)
    if not kind_page.has_input(request.GET):
        return HttpResponse(
            "Build a query first: this export takes the page's parameters.", status=400
        )
    outcome = evaluate(
        kind_page, kind_page.query_from_params(request.GET), private=sees_private(request)
    )
    if "error" in outcome:
        return HttpResponse(outcome["error"]["message"], status=400, content_type="text/plain")
    table = outcome["table"]
    return csv_response(name=f"{kind}-insight", header=table.header, rows=table.rows)


@require_POST
@page("insights.add_savedinsight")
def insight_save(request: HttpRequest, kind: str) -> HttpResponseBase:
    """Saves the page's query (its parameters, posted back) under a name; with `saved`, updates
    that saved insight instead (needs the change permission)."""
    kind_page = _kind(kind)
    name = request.POST.get("name", "").strip()[:MAX_NAME]
    params = QueryDict(request.POST.get("query_string", "")[:20000])
    query = kind_page.query_from_params(params)
    outcome = evaluate(kind_page, query, private=sees_private(request))
    if not name or "error" in outcome:
        message = "Give the insight a name" if not name else outcome["error"]["message"]
        return render(
            request,
            "insights/partials/save_error.html",
            {"message": message},
            status=400,
        )
    existing_id = request.POST.get("saved", "")
    if existing_id.isdigit():
        require(request, "insights.change_savedinsight")
        saved = get_object_or_404(SavedInsight, pk=existing_id, kind=kind)
        saved.name, saved.query = name, query
        saved.save(update_fields=["name", "query", "updated_at"])
    else:
        saved = SavedInsight.objects.create(
            name=name, kind=kind, query=query, owner=_owner(request)
        )
    url = insight_url(kind, query, saved)
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@page("insights.view_savedinsight", "profiles.view_profile")
def insight_people(request: HttpRequest, kind: str) -> HttpResponseBase:
    """The people behind a point of a chart (a funnel step, a retention cell), as a list that
    links to their profiles; `format=csv` exports it."""
    kind_page = _kind(kind)
    if not hasattr(kind_page, "people"):
        raise Http404("This insight has no people list")
    query = kind_page.query_from_params(request.GET)
    private = sees_private(request)
    try:
        title, ids = kind_page.people(query, request.GET)
    except DomainError as exc:
        return render(
            request, "insights/partials/save_error.html", {"message": exc.message}, status=400
        )
    found = list(Profile.objects.filter(pk__in=ids).order_by("-last_seen", "id"))
    rows = labelled(found, private=private, distinct_ids=primary_distinct_ids(p.pk for p in found))
    if request.GET.get("format") == "csv":
        return csv_response(
            name=f"{kind}-people",
            header=["profile_id", "distinct_id", "label", "last_seen", "events"],
            rows=(
                [
                    p.pk,
                    getattr(p, "distinct_id", ""),
                    getattr(p, "label", ""),
                    p.last_seen.isoformat() if p.last_seen else "",
                    p.event_count,
                ]
                for p in rows
            ),
        )
    return render(
        request,
        "insights/partials/people_panel.html",
        {"title": title, "people": rows, "private": private, "csv": request.GET.urlencode()},
    )
