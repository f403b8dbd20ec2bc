"""Writes on destinations: create, change and delete them, with every part checked (type and
resource kind, trigger and its configuration, mapping, type settings) before anything is saved."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from django.db import transaction

from apps.destinations.models import Destination, MappingMode, Resource, Trigger
from apps.destinations.services.mapping import event_filter_check, mapping_check
from apps.destinations.types import destination_type, destination_types
from apps.segments.models import Segment
from apps.sources.models import EventSource
from cdp.errors import DomainError

CONSENT_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_DEBOUNCE = 24 * 3600
MAX_TRAITS = 100

FIELDS = (
    "name",
    "kind",
    "resource",
    "trigger",
    "trigger_config",
    "mapping_mode",
    "mapping",
    "settings",
    "required_consents",
    "enabled",
)


def _fail(field: str, message: str) -> None:
    raise DomainError(f"{field}: {message}", field=field)


def _check_trigger(trigger: str, config: Any) -> dict[str, Any]:
    if trigger not in Trigger.values:
        _fail("trigger", f"must be one of {', '.join(Trigger.values)}")
    if not isinstance(config, dict):
        _fail("trigger_config", "must be an object")
    allowed = {
        Trigger.PROFILE_CHANGED: {"traits", "debounce_seconds"},
        Trigger.SEGMENT_ENTERED: {"segment"},
        Trigger.SEGMENT_EXITED: {"segment"},
        Trigger.EVENT: {"filter", "sources"},
        Trigger.WORKFLOW: set(),
    }[Trigger(trigger)]
    for key in config:
        if key not in allowed:
            _fail(f"trigger_config.{key}", f"is not an option of the {trigger} trigger")
    if trigger == Trigger.PROFILE_CHANGED:
        traits = config.get("traits", [])
        if (
            not isinstance(traits, list)
            or len(traits) > MAX_TRAITS
            or not all(isinstance(t, str) and 0 < len(t) <= 200 for t in traits)
        ):
            _fail("trigger_config.traits", f"must be a list of up to {MAX_TRAITS} trait names")
        debounce = config.get("debounce_seconds", 0)
        if (
            not isinstance(debounce, int | float)
            or isinstance(debounce, bool)
            or not (0 <= debounce <= MAX_DEBOUNCE)
        ):
            _fail("trigger_config.debounce_seconds", f"must be a number from 0 to {MAX_DEBOUNCE}")
    elif trigger in (Trigger.SEGMENT_ENTERED, Trigger.SEGMENT_EXITED):
        key = config.get("segment")
        if not isinstance(key, str) or not Segment.objects.filter(key=key).exists():
            _fail("trigger_config.segment", f"names no segment ({key!r})")
    elif trigger == Trigger.EVENT:
        if config.get("filter") is not None:
            errors = event_filter_check(config["filter"])
            if errors:
                _fail(*errors[0])
        sources = config.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            _fail("trigger_config.sources", "must be a list of source ids")
        known = {
            str(pk)
            for pk in EventSource.objects.filter(pk__in=_uuids(sources)).values_list(
                "pk", flat=True
            )
        }
        unknown = [s for s in sources if s not in known]
        if unknown:
            _fail("trigger_config.sources", f"unknown sources: {', '.join(unknown[:5])}")
    return config


def _uuids(values: list[str]) -> list[str]:
    import uuid

    out = []
    for value in values:
        try:
            out.append(str(uuid.UUID(str(value))))
        except ValueError:
            continue
    return out


def _check(values: dict[str, Any]) -> None:
    kind = values["kind"]
    cls = destination_type(kind)
    if cls is None:
        _fail(
            "kind",
            f"unknown destination type {kind!r} (one of {', '.join(sorted(destination_types()))})",
        )
        return
    resource: Resource = values["resource"]
    if resource.kind not in cls.resource_kinds:
        _fail(
            "resource",
            f"a {kind} destination needs a resource of kind "
            f"{' or '.join(cls.resource_kinds)}, not {resource.kind}",
        )
    _check_trigger(values["trigger"], values["trigger_config"])
    if values["mapping_mode"] not in MappingMode.values:
        _fail("mapping_mode", f"must be one of {', '.join(MappingMode.values)}")
    errors = mapping_check(values["mapping_mode"], values["mapping"])
    if errors:
        _fail(*errors[0])
    settings = values["settings"]
    if not isinstance(settings, dict):
        _fail("settings", "must be an object")
    try:
        jsonschema.validate(settings, cls.settings_schema)
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        _fail(f"settings.{path}" if path else "settings", exc.message)
    errors = cls.check_settings(settings)
    if errors:
        _fail(*errors[0])
    consents = values["required_consents"]
    if not isinstance(consents, list) or not all(
        isinstance(c, str) and CONSENT_KEY.match(c) for c in consents
    ):
        _fail("required_consents", "must be a list of consent type keys")


def destination_create(
    *,
    name: str,
    kind: str,
    resource: Resource,
    trigger: str,
    trigger_config: dict[str, Any] | None = None,
    mapping_mode: str = MappingMode.DEFAULT,
    mapping: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    required_consents: list[str] | None = None,
    enabled: bool = True,
) -> Destination:
    values = {
        "name": name,
        "kind": kind,
        "resource": resource,
        "trigger": trigger,
        "trigger_config": trigger_config or {},
        "mapping_mode": mapping_mode,
        "mapping": mapping or {},
        "settings": settings or {},
        "required_consents": required_consents or [],
        "enabled": enabled,
    }
    _check(values)
    if Destination.objects.filter(name=name).exists():
        raise DomainError(f"A destination named {name!r} exists", field="name", code="duplicate")
    return Destination.objects.create(**values)


def destination_update(*, destination: Destination, **changes: Any) -> Destination:
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    with transaction.atomic():
        destination = Destination.objects.select_for_update().get(pk=destination.pk)
        values = {field: getattr(destination, field) for field in FIELDS}
        values.update(changes)
        _check(values)
        name = values["name"]
        if Destination.objects.filter(name=name).exclude(pk=destination.pk).exists():
            raise DomainError(
                f"A destination named {name!r} exists", field="name", code="duplicate"
            )
        for field, value in values.items():
            setattr(destination, field, value)
        if changes.get("enabled") is True:
            destination.disabled_reason = ""
        destination.save()
    return destination


def destination_delete(*, destination: Destination) -> None:
    destination.delete()
