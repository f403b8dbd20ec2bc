"""URLs of the sources management API."""

from django.urls import include, path

from apps.sources import apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("sources", apis.EventSourceViewSet, basename="source")

api_urlpatterns = [path("", include(router.urls))]
