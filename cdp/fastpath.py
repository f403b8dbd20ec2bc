"""The tracking endpoints skip the middleware made for browsers and the management plane.

SDKs and trackers post events with a write key: no session, no logged-in user, no CSRF
token, no messages, no frames, no static files, and they answer CORS themselves
(apps/events/tracking.py). Running sessions, authentication, CSRF, messages, clickjacking,
htmx, WhiteNoise and the API's CORS middleware for them, and resolving their path against
every URL of the project, cost more than half of what a one-event request costs besides
its insert. So this middleware, placed right after SecurityMiddleware (whose headers and
HTTPS redirect tracking responses keep), resolves the path against the tracking URLconf
(cdp/tracking_urls.py) alone and calls the view directly; any other path goes down the full
stack unchanged.

What the skipped middleware would still have given a tracking request is kept here: the
Host header is checked against ALLOWED_HOSTS (a 400, as everywhere), and an exception a view
raises is turned into a response by Django's handler, handler500 included (a database that
is down answers 503, cdp/outage.py). Tracking views answer their own errors anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

TRACKING_URLCONF = "cdp.tracking_urls"


class TrackingFastPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver(TRACKING_URLCONF)
        # The first segments of the tracking paths ("api", "v1", "track", ...): any other
        # path (pages, health checks, the admin) goes on without being resolved here.
        self.first_segments = frozenset(
            str(pattern.pattern).split("/", 1)[0] for pattern in self.resolver.url_patterns
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info[1:].split("/", 1)[0] not in self.first_segments:
            return self.get_response(request)
        try:
            match = self.resolver.resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.get_host()  # DisallowedHost (a 400) for a Host not in ALLOWED_HOSTS
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
