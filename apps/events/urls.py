"""URLs of the events app: tracking endpoints and the management API."""

from django.urls import include, path

from apps.events import apis, views
from apps.events.bridges import webhook
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("events", apis.EventViewSet, basename="event")
router.register("sessions", apis.SessionViewSet, basename="session")

tracking_urlpatterns = [
    path("api/track", views.track, name="track"),
    path("api/bridges/webhook/<uuid:source_id>", webhook.webhook, name="bridge-webhook"),
    path("v1/track", views.segmentio_track, name="segmentio-track"),
    path("v1/identify", views.segmentio_identify, name="segmentio-identify"),
    path("v1/page", views.segmentio_page, name="segmentio-page"),
    path("v1/screen", views.segmentio_screen, name="segmentio-screen"),
    path("v1/group", views.segmentio_group, name="segmentio-group"),
    path("v1/alias", views.segmentio_alias, name="segmentio-alias"),
    path("v1/batch", views.segmentio_batch, name="segmentio-batch"),
    path("v1/import", views.segmentio_batch, name="segmentio-import"),
    path("track", views.tracardi_track, name="tracardi-track"),
    path("beacon/v1/batch", views.rudderstack_beacon_batch, name="rudderstack-beacon-batch"),
    path("sourceConfig", views.rudderstack_source_config, name="rudderstack-source-config"),
    path("sourceConfig/", views.rudderstack_source_config, name="rudderstack-source-config-slash"),
]

api_urlpatterns = [path("", include(router.urls))]
