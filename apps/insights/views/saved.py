"""Saved insights (list, open, share link, delete) and dashboards (a grid of saved insights,
each tile run with its saved query)."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Max
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.insights.models import Dashboard, DashboardItem, SavedInsight
from apps.insights.views.access import owner as _owner
from apps.insights.views.access import page, sees_private
from apps.insights.views.insights import MAX_NAME, _kind, evaluate, insight_url

MAX_TILES = 30


@page("insights.view_savedinsight")
def saved_list(request: HttpRequest) -> HttpResponseBase:
    insights = SavedInsight.objects.select_related("owner").annotate(tiles_count=Count("tiles"))
    rows = [(saved, insight_url(saved.kind, saved.query, saved)) for saved in insights[:500]]
    return render(request, "insights/saved_list.html", {"rows": rows})


@page("insights.view_savedinsight")
def saved_open(request: HttpRequest, pk: int) -> HttpResponseBase:
    saved = get_object_or_404(SavedInsight, pk=pk)
    return redirect(insight_url(saved.kind, saved.query, saved))


@page("insights.view_savedinsight")
def saved_shared(request: HttpRequest, share_key: str) -> HttpResponseBase:
    saved = get_object_or_404(SavedInsight, share_key=share_key)
    return redirect(insight_url(saved.kind, saved.query, saved))


@require_POST
@page("insights.delete_savedinsight")
def saved_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    saved = get_object_or_404(SavedInsight, pk=pk)
    saved.delete()
    messages.success(request, f"Deleted “{saved.name}”.")
    return redirect("insights:saved_list")


@page("insights.view_dashboard")
def dashboard_list(request: HttpRequest) -> HttpResponseBase:
    dashboards = Dashboard.objects.select_related("owner").annotate(tile_count=Count("items"))
    return render(request, "insights/dashboard_list.html", {"dashboards": dashboards[:500]})


@require_POST
@page("insights.add_dashboard")
def dashboard_create(request: HttpRequest) -> HttpResponseBase:
    name = request.POST.get("name", "").strip()[:MAX_NAME]
    if not name:
        messages.error(request, "Give the dashboard a name.")
        return redirect("insights:dashboard_list")
    dashboard = Dashboard.objects.create(
        name=name, description=request.POST.get("description", "")[:2000], owner=_owner(request)
    )
    return redirect("insights:dashboard_detail", pk=dashboard.pk)


def _render_dashboard(request: HttpRequest, dashboard: Dashboard) -> HttpResponseBase:
    items = list(dashboard.items.select_related("insight")[:MAX_TILES])
    private = sees_private(request)
    tiles = []
    for item in items:
        saved = item.insight
        kind_page = _kind(saved.kind)
        outcome = evaluate(kind_page, dict(saved.query), private=private)
        tiles.append(
            {
                "item": item,
                "saved": saved,
                "url": insight_url(saved.kind, saved.query, saved),
                "views": kind_page.views,
                "chart_id": f"tile-{item.pk}",
                **outcome,
            }
        )
    return render(
        request, "insights/dashboard_detail.html", {"dashboard": dashboard, "tiles": tiles}
    )


@page("insights.view_dashboard", "insights.view_savedinsight")
def dashboard_detail(request: HttpRequest, pk: int) -> HttpResponseBase:
    return _render_dashboard(request, get_object_or_404(Dashboard, pk=pk))


@page("insights.view_dashboard", "insights.view_savedinsight")
def dashboard_shared(request: HttpRequest, share_key: str) -> HttpResponseBase:
    return _render_dashboard(request, get_object_or_404(Dashboard, share_key=share_key))


@require_POST
@page("insights.change_dashboard")
def dashboard_add(request: HttpRequest) -> HttpResponseBase:
    """Adds a saved insight to a dashboard (at the end of its grid)."""
    dashboard = get_object_or_404(Dashboard, pk=request.POST.get("dashboard") or 0)
    saved = get_object_or_404(SavedInsight, pk=request.POST.get("insight") or 0)
    width = (
        DashboardItem.Width.FULL if request.POST.get("width") == "2" else DashboardItem.Width.HALF
    )
    last = dashboard.items.aggregate(last=Max("position"))["last"]
    _item, created = DashboardItem.objects.get_or_create(
        dashboard=dashboard,
        insight=saved,
        defaults={"position": (last or 0) + 1, "width": width},
    )
    if created:
        messages.success(request, f"Added “{saved.name}” to {dashboard.name}.")
    else:
        messages.info(request, f"“{saved.name}” is already on {dashboard.name}.")
    return redirect("insights:dashboard_detail", pk=dashboard.pk)


@require_POST
@page("insights.change_dashboard")
def dashboard_tile(request: HttpRequest, pk: int, item_id: int) -> HttpResponseBase:
    """Moves a tile (up, down), resizes it (width) or removes it."""
    dashboard = get_object_or_404(Dashboard, pk=pk)
    item = get_object_or_404(DashboardItem, pk=item_id, dashboard=dashboard)
    action = request.POST.get("action", "")
    if action == "remove":
        item.delete()
    elif action == "width":
        item.width = 3 - item.width
        item.save(update_fields=["width"])
    elif action in ("up", "down"):
        items = list(dashboard.items.all())
        index = items.index(item)
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(items):
            items[index], items[other] = items[other], items[index]
            for position, tile in enumerate(items):
                if tile.position != position:
                    tile.position = position
                    tile.save(update_fields=["position"])
    return redirect("insights:dashboard_detail", pk=dashboard.pk)


@require_POST
@page("insights.delete_dashboard")
def dashboard_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    dashboard = get_object_or_404(Dashboard, pk=pk)
    dashboard.delete()
    messages.success(request, f"Deleted the dashboard “{dashboard.name}”.")
    return redirect("insights:dashboard_list")
