"""Resources (stored credentials) for workflow actions, through a hook the destinations app
registers in its `AppConfig.ready()`: workflows sit below destinations and never import them.

The `http_request` action may name a resource instead of a URL: the resolver gives the base
URL and headers (authorization included) of the resource's production credentials, or of its
test credentials in a test run (None when it has none: the request is recorded, not sent).
The `workflows.E001` system check fails when no app registered the resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.checks import CheckMessage, Error


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where a request to a resource goes: its base URL, the headers it sends, and whether
    an admin let it reach internal addresses."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    allow_internal: bool = False


class ResourceNotFound(LookupError):
    """No HTTP resource of that name (the message says which)."""


class HttpResourceResolver(Protocol):
    def __call__(self, *, name: str, test: bool) -> HttpTarget | None: ...


class ResourceNames(Protocol):
    """The names of the HTTP resources (to check an action's configuration)."""

    def __call__(self) -> set[str]: ...


_resolver: list[HttpResourceResolver] = []
_names: list[ResourceNames] = []


def register_http_resources(resolver: HttpResourceResolver, names: ResourceNames) -> None:
    _resolver[:] = [resolver]
    _names[:] = [names]


def http_resource(*, name: str, test: bool) -> HttpTarget | None:
    """The target of the named resource (ResourceNotFound when there is none)."""
    if not _resolver:
        raise ResourceNotFound("No app provides resources: install apps.destinations")
    return _resolver[0](name=name, test=test)


def http_resource_names() -> set[str] | None:
    """The HTTP resources' names, or None when no app provides resources."""
    return _names[0]() if _names else None


def check_resources_registered(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if _resolver:
        return []
    return [
        Error(
            "No app registered the workflows' resource resolver.",
            hint="Install apps.destinations: it registers it in its AppConfig.ready().",
            obj="apps.workflows.resources",
            id="workflows.E001",
        )
    ]
