"""manage.py run_bridge redis-stream --source ID --stream NAME: run an inbound bridge."""

from __future__ import annotations

import signal
import socket
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.events.bridges.redis_stream import StreamBridge
from apps.sources.bridges import REDIS_STREAM
from apps.sources.models import EventSource


class Command(BaseCommand):
    help = (
        "Run an inbound bridge. redis-stream: read a Redis stream with a consumer group and "
        "ingest each entry like POST /api/track (acknowledged after commit; unparseable "
        "entries go to a dead-letter stream). Stops cleanly on Ctrl-C or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=["redis-stream"], help="the bridge to run")
        parser.add_argument("--source", required=True, help="id of the source events go to")
        parser.add_argument("--stream", required=True, help="the stream's key")
        parser.add_argument("--group", default="cdp", help="consumer group (default cdp)")
        parser.add_argument(
            "--consumer", default=socket.gethostname(), help="this consumer's name (host name)"
        )
        parser.add_argument(
            "--dead-letter", default="", help="dead-letter stream (default <stream>:dead-letter)"
        )
        parser.add_argument("--redis-url", default="", help="Redis to read (default REDIS_URL)")
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=60_000,
            help="take over other consumers' entries pending this long (default 60000)",
        )
        parser.add_argument("--count", type=int, default=100, help="entries read at a time")
        parser.add_argument(
            "--idle-exit",
            type=float,
            default=None,
            help="stop after this many seconds without an entry (default: run until stopped)",
        )
        parser.add_argument("--max-entries", type=int, default=None, help="stop after N entries")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["redis_url"] or settings.REDIS_URL
        if not url:
            raise CommandError("No Redis to read: set REDIS_URL or pass --redis-url redis://...")
        source = (
            EventSource.objects.filter(pk=options["source"]).first()
            if _is_uuid(options["source"])
            else None
        )
        if source is None:
            raise CommandError(
                f"No source with id {options['source']!r}: see the ids in the admin (Sources)"
            )
        if source.bridge != REDIS_STREAM.key:
            raise CommandError(
                f"The source {source.name!r} uses the {source.bridge!r} bridge: set it to "
                f"{REDIS_STREAM.name} in the admin (or PUT /api/v1/sources/{source.pk}/bridge)"
            )
        if not source.enabled:
            raise CommandError(f"The source {source.name!r} is disabled: enable it first")
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise CommandError(f"Cannot reach Redis at {url}: {exc}") from exc
        bridge = StreamBridge(
            source=source,
            client=client,
            stream=options["stream"],
            group=options["group"],
            consumer=options["consumer"],
            dead_letter=options["dead_letter"],
            claim_idle_ms=options["claim_idle_ms"],
            count=options["count"],
        )
        stopping = {"now": False}

        def stop(signum: int, frame: Any) -> None:
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        with tqdm(desc=f"{options['stream']} -> {source.name}", unit=" entries") as bar:
            stats = bridge.run(
                should_stop=lambda: stopping["now"],
                on_entry=lambda: bar.update(1),
                idle_exit=options["idle_exit"],
                max_entries=options["max_entries"],
            )
        self.stdout.write(
            f"{stats.entries} entries: {stats.ingested} events stored, {stats.duplicates} "
            f"duplicates, {stats.dead_lettered} moved to {bridge.dead_letter}"
        )


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
