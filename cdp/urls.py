"""Root URLs: tracking endpoints, the management API (/api/v1/), its schema and docs, admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.consents import privacy_urls
from apps.consents import urls as consent_urls
from apps.destinations import urls as destination_urls
from apps.events import urls as event_urls
from apps.insights import page_urls as insights_page_urls
from apps.insights import urls as insight_urls
from apps.profiles import urls as profile_urls
from apps.segments import urls as segment_urls
from apps.sources import urls as source_urls
from apps.workflows import urls as workflow_urls
from cdp import tracking_urls
from cdp.health import healthz, readyz

handler500 = "cdp.outage.server_error"

urlpatterns = [
    *tracking_urls.urlpatterns,
    path("api/v1/", include(event_urls.api_urlpatterns)),
    path("api/v1/", include(source_urls.api_urlpatterns)),
    path("api/v1/", include(profile_urls.api_urlpatterns)),
    path("api/v1/", include(consent_urls.api_urlpatterns)),
    path("api/v1/", include(segment_urls.api_urlpatterns)),
    path("api/v1/", include(workflow_urls.api_urlpatterns)),
    path("api/v1/", include(insight_urls.api_urlpatterns)),
    path("api/v1/", include(privacy_urls.api_urlpatterns)),
    path("api/v1/", include(destination_urls.api_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # The marketer's dashboard: login/logout, then its pages from the root (/ is its home).
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="insights/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include(insights_page_urls)),
]
