"""URLs of the events app: tracking endpoints and the management API."""

from django.urls import include, path

from apps.events import apis, views
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("events", apis.EventViewSet, basename="event")
router.register("sessions", apis.SessionViewSet, basename="session")

tracking_urlpatterns = [
    path("api/track", views.track, name="track"),
    path("v1/track", views.segment_track, name="segment-track"),
    path("v1/identify", views.segment_identify, name="segment-identify"),
    path("v1/page", views.segment_page, name="segment-page"),
    path("v1/screen", views.segment_screen, name="segment-screen"),
    path("v1/group", views.segment_group, name="segment-group"),
    path("v1/alias", views.segment_alias, name="segment-alias"),
    path("v1/batch", views.segment_batch, name="segment-batch"),
    path("v1/import", views.segment_batch, name="segment-import"),
    path("track", views.tracardi_track, name="tracardi-track"),
]

api_urlpatterns = [path("", include(router.urls))]
