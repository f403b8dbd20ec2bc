"""URLs of the profiles app: identity tracking endpoints and the management API."""

from django.urls import include, path

from apps.profiles import apis, views
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("profiles", apis.ProfileViewSet, basename="profile")
router.register("groups", apis.GroupViewSet, basename="group")

tracking_urlpatterns = [
    path("api/identify", views.identify, name="identify"),
    path("api/alias", views.alias, name="alias"),
    path("api/people", views.people, name="people"),
    path("api/groups", views.groups, name="groups"),
    path("api/groups/properties", views.group_properties, name="group-properties"),
]

api_urlpatterns = [path("", include(router.urls))]
