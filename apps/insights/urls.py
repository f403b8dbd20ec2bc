"""URLs of the insights app: the query API (the pages are in page_urls.py)."""

from django.urls import path

from apps.insights import apis

api_urlpatterns = [
    path("insights/trends", apis.TrendsQueryView.as_view(), name="insights-trends"),
    path("insights/funnels", apis.FunnelsQueryView.as_view(), name="insights-funnels"),
    path(
        "insights/funnels/people",
        apis.FunnelPeopleView.as_view(),
        name="insights-funnels-people",
    ),
    path("insights/retention", apis.RetentionQueryView.as_view(), name="insights-retention"),
    path(
        "insights/retention/people",
        apis.RetentionPeopleView.as_view(),
        name="insights-retention-people",
    ),
    path("insights/paths", apis.PathsQueryView.as_view(), name="insights-paths"),
]
