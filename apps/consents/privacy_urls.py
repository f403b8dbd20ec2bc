"""URLs of privacy requests: the management API (/api/v1/privacy-requests)."""

from django.urls import include, path

from apps.consents import privacy_apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("privacy-requests", privacy_apis.PrivacyRequestViewSet, basename="privacy-request")

api_urlpatterns = [path("", include(router.urls))]
