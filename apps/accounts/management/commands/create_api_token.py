"""Create an API token for a user; the token is printed once (only its digest is stored)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts import services
from cdp.errors import DomainError


class Command(BaseCommand):
    help = "Create an API token for the management API; prints it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The username the token acts as.")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires (default never)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(
                f"No user {options['user']!r}: create one with `manage.py createsuperuser` "
                "or in the admin, then run this again."
            )
        try:
            row, token = services.api_token_create(
                user=user,
                name=options["name"] or f"token for {user.get_username()}",
                expires_days=options["expires_days"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc
        expiry = row.expires_at.isoformat() if row.expires_at else "never"
        self.stderr.write(
            f"Token {row.prefix}… for {user.get_username()} (expires: {expiry}). "
            "Copy it now, it is not shown again:"
        )
        self.stdout.write(token)
