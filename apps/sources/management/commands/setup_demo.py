"""setup_demo: a demo admin user, a demo marketer (the Marketer role) and a demo source for the
embedded default (make run)."""

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
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
        parser.add_argument("--marketer-username", default="marketer")
        parser.add_argument(
            "--marketer-password",
            default=None,
            help="the new marketer's password (or env CDP_DEMO_MARKETER_PASSWORD); default: a "
            "random one, printed once",
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
        marketer_login = self._marketer(options["marketer_username"], options["marketer_password"])
        source = EventSource.objects.filter(name=DEMO_SOURCE).first() or services.source_create(
            name=DEMO_SOURCE
        )
        self.stdout.write(
            "\n"
            f"  Dashboard:   {base}/   login {marketer_login} (Marketer role)\n"
            f"  Admin:       {base}/admin/   login {login}\n"
            f"  API docs:    {base}/api/docs/\n"
            f"  Source:      {source.name}\n"
            f"  Write key:   {source.write_key}\n\n"
            "  Send a first event:\n"
            f"    curl -X POST {base}/api/track -u '{source.write_key}:' \\\n"
            "      -H 'Content-Type: application/json' \\\n"
            '      -d \'{"event_name": "signed_up", "distinct_id": "user-1"}\'\n\n'
            "  Fill the dashboard with a month of realistic demo activity:\n"
            "    DEBUG=1 .venv/bin/python manage.py generate_demo_data --people 500 --days 30\n"
        )

    def _marketer(self, username: str, password: str | None) -> str:
        """A user in the Marketer group (made by the insights migration): insights, segments,
        saved insights; no private traits, no admin."""
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            return f"{username} (existing user, password unchanged)"
        group = Group.objects.filter(name="Marketer").first()
        if group is None:
            raise CommandError("The Marketer role is missing: run `manage.py migrate` first.")
        password = (
            password or os.environ.get("CDP_DEMO_MARKETER_PASSWORD") or secrets.token_urlsafe(12)
        )
        user = User.objects.create_user(username=username, password=password)
        user.groups.add(group)
        return f"{username} / {password}   (shown once: note it)"
