"""URLs of the consents app: the tracking endpoint and the management API."""

from django.urls import URLPattern, URLResolver, include, path

from apps.consents import apis, views
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("consent-types", apis.ConsentTypeViewSet, basename="consent-type")
router.register("compliance-rules", apis.ComplianceRuleViewSet, basename="compliance-rule")

tracking_urlpatterns = [
    path("api/consent", views.consent, name="consent"),
]

api_urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "profiles/<str:profile_id>/consents",
        apis.ProfileConsentsView.as_view({"get": "list", "post": "create"}),
        name="profile-consents",
    ),
    path("", include(router.urls)),
]
