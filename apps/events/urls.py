"""URLs of the events app: tracking endpoints and the management API."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.events import apis, views

router = SimpleRouter(trailing_slash="/?")
router.register("events", apis.EventViewSet, basename="event")
router.register("sessions", apis.SessionViewSet, basename="session")

tracking_urlpatterns = [
    path("api/track", views.track, name="track"),
]

api_urlpatterns = [path("", include(router.urls))]
