"""Server-side SDK of the customer data platform: `Client(write_key, host)`, then `track`,
`identify`, `alias`, `people`, `group`; batched in a background thread, retried, deduplicated."""

from cdp_analytics.client import Client, People, UserContext, UserPeople
from cdp_analytics.delivery import Stats
from cdp_analytics.errors import APIError, CdpError, ClientClosedError, RejectedError
from cdp_analytics.version import VERSION

__version__ = VERSION

__all__ = [
    "APIError",
    "CdpError",
    "Client",
    "ClientClosedError",
    "People",
    "RejectedError",
    "Stats",
    "UserContext",
    "UserPeople",
    "__version__",
]
