"""URLs of the sources management API."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.sources import apis

router = SimpleRouter(trailing_slash="/?")
router.register("sources", apis.EventSourceViewSet, basename="source")

api_urlpatterns = [path("", include(router.urls))]
