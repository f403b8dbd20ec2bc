"""create_source NAME [--ephemeral] [--requires-consent]: prints the new source as JSON."""

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sources import services


class Command(BaseCommand):
    help = "Create an event source and print its id, name and write key as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--ephemeral", action="store_true", help="Process events, store none.")
        parser.add_argument(
            "--requires-consent", action="store_true", help="Trackers wait for consent."
        )
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            help="A browser origin allowed to send events (repeat for more).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = services.source_create(
                name=options["name"],
                ephemeral=options["ephemeral"],
                requires_consent=options["requires_consent"],
                allowed_origins=options["origin"],
            )
        except ValidationError as exc:
            raise CommandError(f"Invalid source: {'; '.join(exc.messages)}") from exc
        self.stdout.write(
            json.dumps({"id": str(source.id), "name": source.name, "write_key": source.write_key})
        )
