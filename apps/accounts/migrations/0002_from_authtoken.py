"""Tokens of rest_framework.authtoken (stored in clear) become API tokens stored as digests.

They keep working (`Authorization: Token <key>`), since the digest of the same key is stored;
the clear keys are deleted from the old table, which nothing reads any more (drop it with
`DROP TABLE authtoken_token` when convenient)."""

import hashlib
from datetime import UTC, datetime

from django.db import migrations
from django.utils import timezone

OLD_TABLE = "authtoken_token"


def copy_old_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")  # noqa: S608
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            token = ApiToken.objects.create(
                user_id=user_id,
                name="migrated from the previous token table",
                prefix=key[:12],
                digest=hashlib.sha256(key.encode()).hexdigest(),
            )
            if isinstance(created, str):  # SQLite returns the text
                created = datetime.fromisoformat(created)
            if created is not None:
                if timezone.is_naive(created):
                    created = timezone.make_aware(created, UTC)
                ApiToken.objects.filter(pk=token.pk).update(created_at=created)
        cursor.execute(f"DELETE FROM {OLD_TABLE}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(copy_old_tokens, migrations.RunPython.noop)]
