"""URLs of the segments app: the management API."""

from django.urls import include, path

from apps.segments import apis
from apps.segments.scoring import apis as scoring_apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("segments", apis.SegmentViewSet, basename="segment")
router.register("scores", scoring_apis.ScoreViewSet, basename="score")

api_urlpatterns = [path("", include(router.urls))]
