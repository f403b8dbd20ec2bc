"""The API router: collection and item URLs answer with and without a trailing slash."""

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """`/api/v1/events` and `/api/v1/events/` both resolve, with no redirect (a redirect would
    lose the Authorization header in some clients and turn a POST into a GET).

    DRF's `trailing_slash` argument is a boolean since 3.15, so the regex is set here."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
