"""setup_demo: a demo admin user and a demo source for the embedded default (make run)."""

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sources import services
from apps.sources.models import EventSource

DEMO_SOURCE = "Demo website"


class Command(BaseCommand):
    help = "Create (once) a demo admin user and a demo event source, and print how to use them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password",
            default=None,
            help="the new admin's password (or env CDP_DEMO_PASSWORD); default: a random one, "
            "printed once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("setup_demo is for local use: it refuses to run with DEBUG off.")
        base = options["base_url"].rstrip("/")
        User = get_user_model()
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            # Never a well-known password: a demo left reachable is not an open door.
            password = (
                options["password"]
                or os.environ.get("CDP_DEMO_PASSWORD")
                or secrets.token_urlsafe(12)
            )
            User.objects.create_superuser(username=options["username"], email="", password=password)
            login = f"{options['username']} / {password}   (shown once: note it)"
        else:
            login = f"{options['username']} (existing user, password unchanged)"
        source = EventSource.objects.filter(name=DEMO_SOURCE).first() or services.source_create(
            name=DEMO_SOURCE
        )
        self.stdout.write(
            "\n"
            f"  Admin:       {base}/admin/   login {login}\n"
            f"  API docs:    {base}/api/docs/\n"
            f"  Source:      {source.name}\n"
            f"  Write key:   {source.write_key}\n\n"
            "  Send a first event:\n"
            f"    curl -X POST {base}/api/track -u '{source.write_key}:' \\\n"
            "      -H 'Content-Type: application/json' \\\n"
            '      -d \'{"event_name": "signed_up", "distinct_id": "user-1"}\'\n'
        )
