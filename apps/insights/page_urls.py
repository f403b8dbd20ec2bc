"""The dashboard's pages (mounted at the site root by cdp/urls.py)."""

from django.urls import path

from apps.insights.views import home, insights, people, saved, segments, workflows

app_name = "insights"

urlpatterns = [
    path("", home.home, name="home"),
    path("live/", home.live, name="live"),
    path("trends/", insights.trends, name="trends"),
    path("funnels/", insights.funnel, name="funnel"),
    path("retention/", insights.retention, name="retention"),
    path("paths/", insights.paths, name="paths"),
    path("insights/<slug:kind>/export.csv", insights.insight_csv, name="insight_csv"),
    path("insights/<slug:kind>/save/", insights.insight_save, name="insight_save"),
    path("insights/<slug:kind>/people/", insights.insight_people, name="insight_people"),
    path("saved/", saved.saved_list, name="saved_list"),
    path("saved/<int:pk>/", saved.saved_open, name="saved_open"),
    path("saved/<int:pk>/delete/", saved.saved_delete, name="saved_delete"),
    path("s/<str:share_key>/", saved.saved_shared, name="saved_shared"),
    path("dashboards/", saved.dashboard_list, name="dashboard_list"),
    path("dashboards/new/", saved.dashboard_create, name="dashboard_create"),
    path("dashboards/add/", saved.dashboard_add, name="dashboard_add"),
    path("dashboards/<int:pk>/", saved.dashboard_detail, name="dashboard_detail"),
    path("dashboards/<int:pk>/delete/", saved.dashboard_delete, name="dashboard_delete"),
    path("dashboards/<int:pk>/tiles/<int:item_id>/", saved.dashboard_tile, name="dashboard_tile"),
    path("d/<str:share_key>/", saved.dashboard_shared, name="dashboard_shared"),
    path("people/", people.people, name="people"),
    path("people/<str:profile_id>/", people.profile, name="profile"),
    path("segments/", segments.segment_list, name="segment_list"),
    path("segments/new/", segments.segment_edit, name="segment_create"),
    path("segments/preview/", segments.segment_preview, name="segment_preview"),
    path("segments/<slug:key>/", segments.segment_detail, name="segment_detail"),
    path("segments/<slug:key>/edit/", segments.segment_edit, name="segment_edit"),
    path("workflows/", workflows.workflow_list, name="workflow_list"),
    path("workflows/new/", workflows.workflow_create, name="workflow_create"),
    path("workflows/<int:pk>/", workflows.workflow_editor, name="workflow_editor"),
]
