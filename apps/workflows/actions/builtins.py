"""The built-in actions."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

import orjson
from django.utils import timezone

from apps.events.selectors import event_count_since
from apps.profiles.identification import normalize
from apps.profiles.models import IdentityKind, Profile
from apps.profiles.selectors import profile_distinct_ids
from apps.segments.filtering import FilterError, evaluate, parse_filter
from apps.segments.models import SegmentKind
from apps.segments.selectors import segment_get
from apps.workflows.actions.base import (
    Action,
    ActionError,
    Fire,
    Retry,
    TransientError,
    Wait,
)
from apps.workflows.context import NodeContext
from apps.workflows.resources import ResourceNotFound, http_resource, http_resource_names
from cdp.outbound import OutboundBlocked, OutboundError, OutboundTimeout, outbound_request

logger = logging.getLogger("apps.workflows.log")

_TRAIT = {"type": "string", "minLength": 1, "maxLength": 200}
_VARIABLE = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 100}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


class Start(Action):
    name = "start"
    category = "Flow"
    icon = "play"
    description = "Where every run begins; fires with the event."
    config_schema = _object({})

    def run(self, context: NodeContext, payload: Any) -> Fire:
        return Fire("out", payload)


class End(Action):
    name = "end"
    category = "Flow"
    icon = "stop"
    description = "Ends this branch."
    ports = ()
    config_schema = _object({})

    def run(self, context: NodeContext, payload: Any) -> list[Fire]:
        return []


@lru_cache(maxsize=512)
def _parsed_filter(tree_json: str) -> Any:
    return parse_filter(json.loads(tree_json), scope="event")


class Condition(Action):
    name = "condition"
    category = "Flow"
    icon = "branch"
    description = "Tests a filter-language condition on the event and the profile."
    ports = ("true", "false")
    # "x-cdp-field" tells the editor's form which field to draw (a JSON Schema annotation,
    # ignored by validation): here the filter language's text form.
    config_schema = _object({"filter": {"type": "object", "x-cdp-field": "filter"}}, ["filter"])
    templated = False  # a filter's values are data, not templates

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        try:
            _parsed_filter(json.dumps(config.get("filter"), sort_keys=True))
        except FilterError as exc:
            return [(f"filter.{exc.leaf}" if exc.leaf else "filter", exc.reason)]
        return []

    def run(self, context: NodeContext, payload: Any) -> Fire:
        filt = _parsed_filter(json.dumps(self.config["filter"], sort_keys=True))
        # The profile as this run's staged changes leave it.
        base = context.profile
        profile = copy.copy(base) if base is not None else Profile(traits={}, private_traits={})
        profile.traits = context.run.preview.public
        profile.private_traits = context.run.preview.private
        matched = evaluate(filt, profile=profile, event=context.event)
        return Fire("true" if matched else "false", payload)


class SetTrait(Action):
    name = "set_trait"
    category = "Profile"
    icon = "user-edit"
    description = "Sets a profile trait (a template value keeps its type)."
    config_schema = _object(
        {"trait": _TRAIT, "value": {}, "once": {"type": "boolean"}}, ["trait", "value"]
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        op = "set_once" if self.config.get("once") else "set"
        context.people({op: {self.config["trait"]: self.config["value"]}})
        return Fire("out", payload)


class CopyProperty(Action):
    name = "copy_property"
    category = "Profile"
    icon = "copy"
    description = "Copies a value from the event or session (a dotted path) into a trait."
    config_schema = _object(
        {
            "from": {
                "type": "string",
                "pattern": r"^(event|session)\.[^.]+(\.[^.]+)*$",
                "x-cdp-field": "path",
            },
            "trait": _TRAIT,
            "once": {"type": "boolean"},
        },
        ["from", "trait"],
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        found, value = context.lookup(self.config["from"])
        if found and value is not None:
            op = "set_once" if self.config.get("once") else "set"
            context.people({op: {self.config["trait"]: value}})
        return Fire("out", payload)


class IncrementTrait(Action):
    name = "increment_trait"
    category = "Profile"
    icon = "plus"
    description = "Adds a number (default 1) to a numeric trait."
    config_schema = _object({"trait": _TRAIT, "by": {"type": ["number", "string"]}}, ["trait"])

    def run(self, context: NodeContext, payload: Any) -> Fire:
        by = self.config.get("by", 1)
        if isinstance(by, str):
            try:
                by = float(by) if "." in by else int(by)
            except ValueError as exc:
                raise ActionError(f"by: {by!r} is not a number") from exc
        context.people({"increment": {self.config["trait"]: by}})
        return Fire("out", payload)


class AppendTrait(Action):
    name = "append_trait"
    category = "Profile"
    icon = "list"
    description = "Appends a value to a list trait (unique: only when not already there)."
    config_schema = _object(
        {"trait": _TRAIT, "value": {}, "unique": {"type": "boolean"}}, ["trait", "value"]
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        trait, value = self.config["trait"], self.config["value"]
        if self.config.get("unique"):
            context.people({"union": {trait: value if isinstance(value, list) else [value]}})
        else:
            context.people({"append": {trait: value}})
        return Fire("out", payload)


class DeleteTrait(Action):
    name = "delete_trait"
    category = "Profile"
    icon = "trash"
    description = "Removes a trait from the profile."
    config_schema = _object({"trait": _TRAIT}, ["trait"])

    def run(self, context: NodeContext, payload: Any) -> Fire:
        context.people({"unset": [self.config["trait"]]})
        return Fire("out", payload)


class AddToSegment(Action):
    name = "add_to_segment"
    category = "Segments"
    icon = "users-plus"
    description = "Adds the profile to a static segment (by key)."
    config_schema = _object({"segment": {"type": "string", "minLength": 1}}, ["segment"])
    add = True

    def run(self, context: NodeContext, payload: Any) -> Fire:
        segment = segment_get(self.config["segment"])
        if segment.kind != SegmentKind.STATIC:
            raise ActionError(f"segment {segment.key!r} is dynamic: its filter decides members")
        context.segment_change(segment=segment.key, add=self.add)
        return Fire("out", payload)


class RemoveFromSegment(AddToSegment):
    name = "remove_from_segment"
    category = "Segments"
    icon = "users-minus"
    description = "Removes the profile from a static segment (by key)."
    add = False


class MergeBy(Action):
    name = "merge_by"
    category = "Profile"
    icon = "merge"
    description = (
        "Identifies the profile by a trait (such as email): another profile with the same "
        "identifier is merged with it, unless both are known users."
    )
    config_schema = _object(
        {
            "trait": _TRAIT,
            "kind": {"enum": ["email", "phone", "custom"]},
            "value": {"type": "string"},
        },
        ["trait"],
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        kind = self.config.get("kind", "email")
        value = self.config.get("value")
        if value is None:
            _, value = context.trait(self.config["trait"])
        normalized = normalize(kind, value)
        if not normalized:
            raise ActionError(f"trait {self.config['trait']!r} holds no valid {kind}")
        identity_kind = {"email": IdentityKind.EMAIL, "phone": IdentityKind.PHONE}.get(
            kind, IdentityKind.CUSTOM
        )
        context.merge_by(identifier=f"{kind}:{normalized}"[:200], kind=identity_kind)
        return Fire("out", payload)


class EmitEvent(Action):
    name = "emit_event"
    category = "Events"
    icon = "bolt"
    description = "Emits an event through the normal pipeline (rules can route it)."
    config_schema = _object(
        {
            "event_name": {"type": "string", "minLength": 1, "maxLength": 255},
            "properties": {"type": "object"},
            "distinct_id": {"type": "string"},
        },
        ["event_name"],
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        context.emit(
            event_name=str(self.config["event_name"]),
            properties=self.config.get("properties") or {},
            distinct_id=str(self.config.get("distinct_id") or context.distinct_id),
        )
        return Fire("out", payload)


_RESPONSE_TEXT_LIMIT = 64 * 1024


class HttpRequest(Action):
    name = "http_request"
    category = "Integrations"
    icon = "globe"
    description = (
        "Calls an HTTP endpoint. 2xx/3xx fire success; 4xx fire error; 5xx, timeouts and "
        "connection failures are retried with backoff, then fire error. Redirects are not followed "
        "and internal addresses are refused (see docs/security.md). Give a `url`, or a "
        "`resource` (its stored credentials; `path` is appended to its URL). In test mode the "
        "request goes to `test_url` (or the resource's test credentials) when set, else it is "
        "recorded and not sent."
    )
    ports = ("success", "error")
    concurrent = True
    config_schema = _object(
        {
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
            "url": {"type": "string", "minLength": 1},
            "test_url": {"type": "string"},
            "resource": {"type": "string", "minLength": 1, "maxLength": 200},
            "path": {"type": "string", "maxLength": 2000},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": ["string", "object", "array"]},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            "retries": {"type": "integer", "minimum": 0, "maximum": 10},
            "backoff": {"type": "number", "minimum": 0, "maximum": 60},
        },
    ) | {"oneOf": [{"required": ["url"]}, {"required": ["resource"]}]}

    @classmethod
    def is_concurrent(cls, config: dict[str, Any]) -> bool:
        # A resource is read from the database: that node runs in the run's own thread.
        return "resource" not in config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if ("url" in config) == ("resource" in config):
            return [("url", "give either a url or a resource")]
        if "resource" in config:
            if "test_url" in config:
                errors.append(("test_url", "a resource has test credentials: no test_url"))
            names = http_resource_names()
            resource = config["resource"]
            if names is not None and "{{" not in resource and resource not in names:
                errors.append(("resource", f"no webhook resource is named {resource!r}"))
            return errors
        for key in ("url", "test_url"):
            url = config.get(key)
            if (
                isinstance(url, str)
                and "{{" not in url
                and not url.startswith(("http://", "https://"))
            ):
                errors.append((key, "must be an http:// or https:// URL"))
        return errors

    def timeout_seconds(self, default: float) -> float:
        # The engine's limit leaves the HTTP client room to time out first.
        return float(self.config.get("timeout", 10)) + 1

    def retry_policy(self) -> Retry:
        return Retry(
            attempts=int(self.config.get("retries", 2)) + 1,
            backoff=float(self.config.get("backoff", 0.5)),
        )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        method = self.config.get("method", "POST")
        headers = {str(k): str(v) for k, v in (self.config.get("headers") or {}).items()}
        body = self.config.get("body")
        content: bytes | None = None
        if isinstance(body, dict | list):
            content = orjson.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            content = str(body).encode()
        allow_internal = False
        if "resource" in self.config:
            try:
                target = http_resource(name=str(self.config["resource"]), test=context.test)
            except ResourceNotFound as exc:
                raise ActionError(str(exc)) from exc
            path = str(self.config.get("path") or "")
            if target is None:  # a test run, and the resource has no test credentials
                context.record_request(
                    {
                        "method": method,
                        "resource": self.config["resource"],
                        "path": path,
                        "headers": headers,
                        "body": body,
                        "sent": False,
                    }
                )
                return Fire("success", {"status": None, "recorded": True, "body": None})
            url = target.url.rstrip("/") + "/" + path.lstrip("/") if path else target.url
            headers = {**target.headers, **headers}
            allow_internal = target.allow_internal
            if context.test:
                # Shown without the resource's headers: they hold its credentials.
                context.record_request(
                    {
                        "method": method,
                        "resource": self.config["resource"],
                        "path": path,
                        "body": body,
                        "sent": True,
                    }
                )
            return self._call(method, url, headers, content, allow_internal)
        url = str(self.config["url"])
        if context.test:
            test_url = self.config.get("test_url")
            request = {
                "method": method,
                "url": url,
                "headers": headers,
                "body": body,
                "sent": bool(test_url),
            }
            context.record_request(request)
            if not test_url:
                return Fire("success", {"status": None, "recorded": True, "body": None})
            url = str(test_url)
        return self._call(method, url, headers, content, allow_internal)

    def _call(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        allow_internal: bool,
    ) -> Fire:
        try:
            response = outbound_request(
                method,
                url,
                headers=headers,
                content=content,
                timeout=float(self.config.get("timeout", 10)),
                max_bytes=_RESPONSE_TEXT_LIMIT,
                allow_internal=allow_internal,
            )
        except OutboundBlocked as exc:
            # A policy refusal: retrying cannot help, so the node fails at once.
            raise ActionError(str(exc)) from exc
        except OutboundTimeout as exc:
            raise TransientError(f"{method} {url}: timed out") from exc
        except OutboundError as exc:
            raise TransientError(str(exc)) from exc
        if response.status_code >= 500:
            raise TransientError(f"{method} {url}: HTTP {response.status_code}")
        result = {"status": response.status_code, "body": response.body()}
        if response.truncated:
            result["truncated"] = True
        return Fire("success" if response.status_code < 400 else "error", result)


class Template(Action):
    name = "template"
    category = "Data"
    icon = "braces"
    description = "Renders a text template into a workflow variable (`vars.<variable>`)."
    config_schema = _object(
        {"template": {"type": "string"}, "variable": _VARIABLE}, ["template", "variable"]
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        value = self.config["template"]
        context.set_var(self.config["variable"], value if value is None else str(value))
        return Fire("out", payload)


class Delay(Action):
    name = "delay"
    category = "Flow"
    icon = "clock"
    description = "Continues after a while; the run waits without holding a worker."
    config_schema = _object(
        {
            "seconds": {"type": "number", "minimum": 0, "maximum": 30 * 86400},
            "minutes": {"type": "number", "minimum": 0, "maximum": 30 * 1440},
        },
    )

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        if "seconds" not in config and "minutes" not in config:
            return [("seconds", "give seconds or minutes")]
        return []

    def run(self, context: NodeContext, payload: Any) -> Wait:
        seconds = float(self.config.get("seconds", 0)) + 60 * float(self.config.get("minutes", 0))
        return Wait(seconds=seconds, port="out", payload=payload)


class Counter(Action):
    name = "counter"
    category = "Events"
    icon = "hash"
    description = (
        "Counts the events of a type this profile sent in the last N minutes into a variable."
    )
    config_schema = _object(
        {
            "event_name": {"type": "string", "minLength": 1},
            "minutes": {"type": "number", "exclusiveMinimum": 0},
            "variable": _VARIABLE,
        },
        ["event_name", "minutes", "variable"],
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        profile = context.profile
        ids = profile_distinct_ids(profile) if profile is not None else [context.distinct_id]
        since = timezone.now() - timedelta(minutes=float(self.config["minutes"]))
        count = event_count_since(
            distinct_ids=ids or [context.distinct_id],
            event_name=str(self.config["event_name"]),
            since=since,
        )
        context.set_var(self.config["variable"], count)
        return Fire("out", payload)


class Log(Action):
    name = "log"
    category = "Data"
    icon = "note"
    description = "Writes a message (a template) to the run's trace and the worker log."
    config_schema = _object(
        {"message": {"type": "string"}, "level": {"enum": ["debug", "info", "warning", "error"]}},
        ["message"],
    )

    def run(self, context: NodeContext, payload: Any) -> Fire:
        message = str(self.config["message"])
        level = logging.getLevelName(str(self.config.get("level", "info")).upper())
        logger.log(level, "workflow %s: %s", context.run.workflow_id, message)
        context.log(message)
        return Fire("out", payload)


BUILTIN_ACTIONS: tuple[type[Action], ...] = (
    Start,
    End,
    Condition,
    SetTrait,
    CopyProperty,
    IncrementTrait,
    AppendTrait,
    DeleteTrait,
    AddToSegment,
    RemoveFromSegment,
    MergeBy,
    EmitEvent,
    HttpRequest,
    Template,
    Delay,
    Counter,
    Log,
)
