"""Re-encrypt every encrypted field of every model under the first key of CDP_ENCRYPTION_KEYS.

Rotation: put the new key first (`CDP_ENCRYPTION_KEYS=new,old`), run this command, then drop
the old key. Values already under the new key are rewritten all the same (Fernet tokens carry
their time); a value no key opens stops the command with what to do, and what it already
re-encrypted stays (each batch commits on its own, and any key in the list still opens it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from tqdm import tqdm

from cdp.crypto import DecryptionError, encrypted_fields, rotate

BATCH = 500


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the first key of CDP_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar (logs, cron)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fields = encrypted_fields()
        quote = connection.ops.quote_name
        totals = []
        for model, column in fields:
            count = model._default_manager.exclude(**{column: None}).exclude(**{column: ""})
            totals.append(count.count())
        rewritten = 0
        with tqdm(
            total=sum(totals),
            unit="value",
            desc="Re-encrypting",
            disable=options["no_progress"],
            file=self.stderr,
        ) as bar:
            for model, column in fields:
                table = quote(model._meta.db_table)
                pk = quote(str(model._meta.pk.column))
                col = quote(str(model._meta.get_field(column).column))  # type: ignore[union-attr]
                last: Any = None
                while True:
                    with transaction.atomic(), connection.cursor() as cursor:
                        where = f"{col} IS NOT NULL AND {col} <> ''"
                        params: list[Any] = []
                        if last is not None:
                            where += f" AND {pk} > %s"
                            params.append(last)
                        cursor.execute(
                            f"SELECT {pk}, {col} FROM {table} WHERE {where} "  # noqa: S608
                            f"ORDER BY {pk} LIMIT {BATCH}",
                            params,
                        )
                        rows = cursor.fetchall()
                        if not rows:
                            break
                        for key, token in rows:
                            try:
                                fresh = rotate(token)
                            except DecryptionError as exc:
                                raise CommandError(
                                    f"{model._meta.label} {key} ({column}): {exc}"
                                ) from exc
                            cursor.execute(
                                f"UPDATE {table} SET {col} = %s WHERE {pk} = %s",  # noqa: S608
                                [fresh, key],
                            )
                        last = rows[-1][0]
                    rewritten += len(rows)
                    bar.update(len(rows))
        self.stdout.write(
            f"Re-encrypted {rewritten} values in {len(fields)} fields under the first key of "
            "CDP_ENCRYPTION_KEYS. The other keys can now be removed."
        )
