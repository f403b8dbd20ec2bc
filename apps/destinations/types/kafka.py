"""The Kafka destination (an optional extra: `pip install .[kafka]`, confluent-kafka), the
documented scale-out sink. confluent_kafka is imported only when a delivery is sent."""

from __future__ import annotations

import time
from typing import Any

import orjson

from apps.destinations.connections import guard_host
from apps.destinations.types.base import DeliveryResult, DestinationType, Outgoing, SendContext
from cdp.outbound import OutboundError


class KafkaMissing(RuntimeError):
    """confluent-kafka is not installed."""


class Kafka(DestinationType):
    name = "kafka"
    label = "Kafka topic (optional extra: pip install .[kafka])"
    resource_kinds = ("kafka",)
    supports_profile_deleted = True
    settings_schema = {
        "type": "object",
        "properties": {
            "topic": {"type": "string", "minLength": 1, "maxLength": 249},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 10_000},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
        "required": ["topic"],
        "additionalProperties": False,
    }

    @classmethod
    def max_batch(cls, settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 500))

    def _producer(self, context: SendContext) -> Any:
        try:
            from confluent_kafka import Producer
        except ImportError as exc:
            raise KafkaMissing(
                "The Kafka destination needs confluent-kafka: pip install '.[kafka]'"
            ) from exc
        servers = str(context.credentials["bootstrap_servers"])
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            guard_host(
                host.strip("[]") or port,
                int(port or 9092) if host else 9092,
                allow_internal=context.allow_internal,
            )
        config: dict[str, Any] = {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "message.timeout.ms": int(float(context.settings.get("timeout", 30)) * 1000),
        }
        if context.credentials.get("security_protocol"):
            config["security.protocol"] = context.credentials["security_protocol"]
        if context.credentials.get("username"):
            config["sasl.mechanism"] = context.credentials.get("sasl_mechanism", "PLAIN")
            config["sasl.username"] = context.credentials["username"]
            config["sasl.password"] = context.credentials.get("password", "")
        return Producer(config)

    def send(self, context: SendContext, batch: list[Outgoing]) -> list[DeliveryResult]:
        started = time.monotonic()
        try:
            producer = self._producer(context)
        except (KafkaMissing, OutboundError) as exc:
            return [DeliveryResult(ok=False, error=str(exc)) for _ in batch]
        results: list[DeliveryResult | None] = [None] * len(batch)

        def done(index: int) -> Any:
            def report(error: Any, message: Any) -> None:
                latency = round((time.monotonic() - started) * 1000)
                results[index] = (
                    DeliveryResult(ok=False, error=str(error)[:500], latency_ms=latency)
                    if error is not None
                    else DeliveryResult(
                        ok=True, response=f"offset {message.offset()}", latency_ms=latency
                    )
                )

            return report

        topic = str(context.settings["topic"])
        for index, item in enumerate(batch):
            value = None if item.trigger == "profile_deleted" else orjson.dumps(item.payload)
            producer.produce(
                topic,
                key=(item.profile_id or item.key).encode(),
                value=value,
                headers=[("idempotency-key", item.key.encode())],
                on_delivery=done(index),
            )
        producer.flush(float(context.settings.get("timeout", 30)))
        return [r or DeliveryResult(ok=False, error="not acknowledged in time") for r in results]
