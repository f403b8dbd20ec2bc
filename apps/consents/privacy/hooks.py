"""What privacy requests ask the apps above consents, through hooks they register in ready().

Consents sit below segments, workflows, destinations and insights: they never import them.
Each upper app that keeps rows about a person (segment memberships, workflow runs and their
traces, deliveries) registers one `PersonDataHandler`: export its rows of a person, erase them,
count them. The `consents.E101` system check fails when an installed app has a model that points
at a person (a foreign key to a profile, a `profile_id` or `distinct_id` column) and no handler,
so a new app can't hold person data that an erase would leave behind.

Destinations register `profile_deleted` subscribers: called once per delete, before anything is
erased, inside a transaction, so that they can write their `profile_deleted` deliveries (the
outbox) for the destinations that declare support."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.apps import apps as django_apps
from django.core.checks import CheckMessage, Error
from django.db import models, transaction
from django.db.models import QuerySet

# Apps whose person rows the privacy services handle themselves, and the privacy requests
# (which forget their subject when done).
OWN_APPS = frozenset({"events", "profiles"})
OWN_MODELS = frozenset({"consents.PrivacyRequest"})
PERSON_COLUMNS = ("distinct_id", "profile_id")
# Rows one erase transaction deletes at most: short transactions, so an erase of a big person
# never holds long locks while ingest and processing go on.
DELETE_BATCH = 5000


def delete_in_batches(
    rows: QuerySet[Any], *, batch_size: int = DELETE_BATCH
) -> Iterator[dict[str, int]]:
    """Delete the rows in transactions of at most `batch_size` rows each; yields, after each
    commit, what the batch deleted per model label (cascades included, as QuerySet.delete()
    counts them). For the erasers of the apps' person data."""
    while True:
        with transaction.atomic():
            keys = list(rows.order_by().values_list("pk", flat=True)[:batch_size])
            if not keys:
                return
            _, per_model = rows.model.objects.filter(pk__in=keys).delete()
        yield per_model


@dataclass(frozen=True, slots=True)
class Person:
    """One person: the surviving profile, every profile merged into it, and all their ids."""

    profile_ids: tuple[uuid.UUID, ...]
    distinct_ids: tuple[str, ...]

    @property
    def survivor_id(self) -> uuid.UUID | None:
        return self.profile_ids[0] if self.profile_ids else None


# An export: file name (without .ndjson) -> rows (JSON-safe dicts), produced lazily.
Exporter = Callable[..., dict[str, Iterable[dict[str, Any]]]]


class Eraser(Protocol):
    """Delete the app's rows of the person (in short batches); calls `progress(table, n)` after
    each batch; returns rows deleted per table."""

    def __call__(
        self, *, person: Person, progress: Callable[[str, int], None]
    ) -> dict[str, int]: ...


class Counter(Protocol):
    """The app's rows of the person, per table (the request's totals; the tests' checks)."""

    def __call__(self, *, person: Person) -> dict[str, int]: ...


class ProfileDeletedHook(Protocol):
    """A person is about to be erased (request id given: an idempotency key)."""

    def __call__(self, *, person: Person, request_id: uuid.UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class PersonDataHandler:
    app_label: str
    export: Exporter
    erase: Eraser
    count: Counter


@dataclass(slots=True)
class _Registry:
    handlers: dict[str, PersonDataHandler] = field(default_factory=dict)
    profile_deleted: list[ProfileDeletedHook] = field(default_factory=list)


_registry = _Registry()


def register_person_data(handler: PersonDataHandler) -> None:
    """Register (or replace) an app's handler; from its AppConfig.ready()."""
    _registry.handlers[handler.app_label] = handler


def register_profile_deleted(hook: ProfileDeletedHook) -> None:
    if hook not in _registry.profile_deleted:  # ready() may run twice in tests
        _registry.profile_deleted.append(hook)


def person_data_handlers() -> list[PersonDataHandler]:
    """The registered handlers, in the order of INSTALLED_APPS."""
    order = {config.label: i for i, config in enumerate(django_apps.get_app_configs())}
    return sorted(_registry.handlers.values(), key=lambda h: order.get(h.app_label, len(order)))


def profile_deleted(*, person: Person, request_id: uuid.UUID) -> int:
    """Tell every subscriber; returns how many there were."""
    for hook in _registry.profile_deleted:
        hook(person=person, request_id=request_id)
    return len(_registry.profile_deleted)


# --- the system check --------------------------------------------------------------------------


def _points_at_a_person(model: type[models.Model]) -> bool:
    for f in model._meta.concrete_fields:
        if f.name in PERSON_COLUMNS or f.attname in PERSON_COLUMNS:
            return True
        related = getattr(f, "related_model", None)
        if related is not None and related._meta.label == "profiles.Profile":
            return True
    return False


def apps_with_person_data() -> Iterator[tuple[str, list[str]]]:
    """(app label, model names) of the installed apps outside OWN_APPS holding person rows."""
    for config in django_apps.get_app_configs():
        if config.label in OWN_APPS:
            continue
        found = [
            m.__name__
            for m in config.get_models()
            if m._meta.label not in OWN_MODELS and _points_at_a_person(m)
        ]
        if found:
            yield config.label, found


def check_person_data_registered(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """System check: every installed app with person rows registered a PersonDataHandler."""
    return [
        Error(
            f"The app {label!r} keeps rows about a person ({', '.join(names)}) but registered "
            "no privacy handler: an erase would leave them behind and an export miss them.",
            hint="Call apps.consents.privacy.hooks.register_person_data(...) from its "
            "AppConfig.ready() (see apps/segments/person_data.py).",
            obj="apps.consents.privacy.hooks",
            id="consents.E101",
        )
        for label, names in apps_with_person_data()
        if label not in _registry.handlers
    ]
