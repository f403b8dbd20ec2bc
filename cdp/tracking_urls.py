"""The tracking endpoints of every app, in one URLconf: the root URLconf includes them, and
the tracking fast path (cdp/fastpath.py) resolves requests against them alone."""

from apps.consents import urls as consent_urls
from apps.events import urls as event_urls
from apps.profiles import urls as profile_urls

urlpatterns = [
    *event_urls.tracking_urlpatterns,
    *profile_urls.tracking_urlpatterns,
    *consent_urls.tracking_urlpatterns,
]
