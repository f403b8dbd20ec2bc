"""URLs of the workflows app: the management API."""

from django.urls import include, path

from apps.workflows import apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("rules", apis.RuleViewSet, basename="rule")
router.register("workflows", apis.WorkflowViewSet, basename="workflow")
router.register("runs", apis.RunViewSet, basename="run")
router.register("actions", apis.ActionViewSet, basename="action")

api_urlpatterns = [path("", include(router.urls))]
