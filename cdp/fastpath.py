"""The tracking endpoints skip the middleware made for browsers and the management plane, and
in production Django's request handler too.

SDKs and trackers post events with a write key: no session, no logged-in user, no CSRF
token, no messages, no frames, no static files, and they answer CORS themselves
(apps/events/tracking.py). Running sessions, authentication, CSRF, messages, clickjacking,
htmx, WhiteNoise and the API's CORS middleware for them, and resolving their path against
every URL of the project, cost more than half of what a one-event request costs besides
its insert. So tracking paths are resolved against the tracking URLconf
(cdp/tracking_urls.py) alone and their view is called directly, in one of two places:

- `TrackingWSGIApplication` (cdp/wsgi.py: gunicorn, runserver) serves them before Django's
  WSGI handler, whose request signals and response machinery cost a tracking request about
  a tenth of its CPU. What the handler would have done for it is done here: the database
  connections of the thread are released as at the end of any request (returned to the
  pool), an error becomes the response Django would give (handler500: a database that is down
  answers 503, cdp/outage.py), and 4xx/5xx answers are logged the same way.
- `TrackingFastPathMiddleware`, right after SecurityMiddleware, does the same inside Django's
  handler, for what does not come through WSGI (ASGI, Django's test client).

Either way a tracking response keeps SecurityMiddleware's headers and HTTPS redirect, and the
Host header is checked against ALLOWED_HOSTS (a 400, as everywhere). Any other path goes down
the full stack unchanged, after a look at its first segment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_path_info, get_script_name
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, ResolverMatch, get_resolver, set_script_prefix
from django.utils.log import log_response

TRACKING_URLCONF = "cdp.tracking_urls"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class TrackingRoutes:
    """The tracking URLconf, resolved on its own."""

    def __init__(self) -> None:
        self.resolver = get_resolver(TRACKING_URLCONF)
        # The first segments of the tracking paths ("api", "v1", "track", ...): any other
        # path (pages, health checks, the admin) is not resolved here.
        self.first_segments = frozenset(
            str(pattern.pattern).split("/", 1)[0] for pattern in self.resolver.url_patterns
        )

    def match(self, path_info: str) -> ResolverMatch | None:
        if path_info[1:].split("/", 1)[0] not in self.first_segments:
            return None
        try:
            return self.resolver.resolve(path_info)
        except Resolver404:
            return None


def serve(request: HttpRequest, match: ResolverMatch) -> HttpResponse:
    """Call a tracking view, once its Host is known to be allowed."""
    request.get_host()  # DisallowedHost (a 400) for a Host not in ALLOWED_HOSTS
    request.resolver_match = match
    response: HttpResponse = match.func(request, *match.args, **match.kwargs)
    return response


class TrackingFastPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.routes = TrackingRoutes()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = self.routes.match(request.path_info)
        if match is None:
            return self.get_response(request)
        return serve(request, match)


class TrackingWSGIApplication:
    """WSGI: tracking requests are answered here, everything else by Django's handler."""

    def __init__(self, handler: WSGIHandler) -> None:
        self.handler = handler
        self.routes = TrackingRoutes()
        self.security = SecurityMiddleware(self._never_called)

    @staticmethod
    def _never_called(request: HttpRequest) -> HttpResponse:
        raise AssertionError("SecurityMiddleware's hooks are called one by one here")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = self.routes.match(get_path_info(environ))
        if match is None:
            return self.handler(environ, start_response)
        set_script_prefix(get_script_name(environ))
        # What the request_started and request_finished signals do for a request's database
        # connections: a broken or expired one is closed before use, and at the end each goes
        # back to the pool (or is closed past CONN_MAX_AGE).
        close_old_connections()
        request = WSGIRequest(environ)
        try:
            response = self.security.process_request(request) or serve(request, match)
            response = self.security.process_response(request, response)
        except Exception as exc:  # as Django's handler answers it: 400, 403, handler500...
            response = response_for_exception(request, exc)
        finally:
            close_old_connections()
        if response.status_code >= 400:
            log_response(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,
                request=request,
            )
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [
                *response.items(),
                *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
            ],
        )
        request.close()
        if response.streaming:  # not a tracking view's answer, but answered whole all the same
            return response
        return [response.content]
