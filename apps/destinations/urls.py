"""URLs of the destinations management API."""

from django.urls import include, path

from apps.destinations import apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("resources", apis.ResourceViewSet, basename="resource")
router.register("destinations", apis.DestinationViewSet, basename="destination")

api_urlpatterns = [path("", include(router.urls))]
