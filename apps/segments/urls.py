"""URLs of the segments app: the management API."""

from django.urls import include, path

from apps.segments import apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("segments", apis.SegmentViewSet, basename="segment")

api_urlpatterns = [path("", include(router.urls))]
