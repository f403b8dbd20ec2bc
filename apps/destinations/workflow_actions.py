"""What destinations give the workflow engine (registered from DestinationsConfig.ready()):
the `send_to_destination` action and its staged change, and the resources the `http_request`
action may name instead of a URL."""

from __future__ import annotations

from typing import Any

from apps.destinations.connections import webhook_headers
from apps.destinations.models import Destination, Resource, ResourceKind, Trigger
from apps.destinations.services import destination_send_from_workflow
from apps.destinations.services.mapping import profile_view
from apps.workflows.actions import Action, ActionError, Fire
from apps.workflows.context import Effect, RunContext
from apps.workflows.effects import EffectApplier
from apps.workflows.resources import HttpTarget, ResourceNotFound

SEND_KIND = "destination_send"


class SendToDestination(Action):
    name = "send_to_destination"
    category = "Integrations"
    icon = "bolt"
    description = (
        "Writes a delivery to a destination whose trigger is 'workflow' (sent through its "
        "outbox: retried, logged, replayable). `payload` (templates allowed) is what is sent; "
        "without it, the event and the profile's public traits. In test mode nothing is written."
    )
    config_schema = {
        "type": "object",
        "properties": {
            "destination": {"type": "string", "minLength": 1, "maxLength": 200},
            "payload": {},
        },
        "required": ["destination"],
        "additionalProperties": False,
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        name = config.get("destination")
        if isinstance(name, str) and "{{" not in name:
            destination = Destination.objects.filter(name=name).first()
            if destination is None:
                return [("destination", f"no destination is named {name!r}")]
            if destination.trigger != Trigger.WORKFLOW:
                return [("destination", f"{name!r} is not triggered by workflows")]
        return []

    def run(self, context: Any, payload: Any) -> Fire:
        name = str(self.config["destination"])
        data = self.config.get("payload")
        if data is None:
            scope = context.scope()
            public = {k: v for k, v in scope["profile"].items() if k != "private_traits"}
            data = {"event": scope["event"], "profile": public}
        if context.test:
            context.record_request({"destination": name, "payload": data, "sent": False})
            return Fire("out", payload)
        context.effects.append(
            Effect(
                SEND_KIND,
                context.node_id,
                {
                    "destination": name,
                    "payload": data,
                    "key": f"wf-{context.run.run_key}-{context.node_id}",
                },
            )
        )
        return Fire("out", payload)


class DestinationSendApplier(EffectApplier):
    """Writes the delivery of a send_to_destination node, in the run's recording transaction."""

    kind = SEND_KIND

    def apply(self, run: RunContext, effects: list[Effect]) -> None:
        for effect in effects:
            destination = Destination.objects.filter(name=effect.data["destination"]).first()
            if destination is None or destination.trigger != Trigger.WORKFLOW:
                raise ActionError(
                    f"no destination {effect.data['destination']!r} triggered by workflows"
                )
            profile = run.profile
            destination_send_from_workflow(
                destination=destination,
                key=effect.data["key"],
                data=effect.data["payload"],
                profile_id=profile.pk if profile is not None else None,
            )


def http_resource_target(*, name: str, test: bool) -> HttpTarget | None:
    resource = Resource.objects.filter(name=name, kind=ResourceKind.WEBHOOK).first()
    if resource is None:
        raise ResourceNotFound(f"no webhook resource is named {name!r}")
    credentials = resource.test_credentials if test else resource.credentials
    if not credentials:
        return None
    return HttpTarget(
        url=str(credentials["url"]),
        headers=webhook_headers(credentials),
        allow_internal=resource.internal,
    )


def http_resource_names() -> set[str]:
    return set(Resource.objects.filter(kind=ResourceKind.WEBHOOK).values_list("name", flat=True))


__all__ = [
    "DestinationSendApplier",
    "SendToDestination",
    "http_resource_names",
    "http_resource_target",
    "profile_view",
]
