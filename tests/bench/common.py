"""What the benchmarks share: Django set up from the environment, a throw-away database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def django_setup(**environ: str) -> Any:
    """Set Django up (settings from the environment, `environ` as defaults); returns the
    default database connection."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    for name, value in environ.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()
    from django.db import connection

    return connection


@contextmanager
def throwaway_database(suffix: str) -> Iterator[None]:
    """Run inside a new database `<name>_<suffix>` (migrated), dropped afterwards, as the test
    runner does: a benchmark never touches the configured database's data."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    if connection.vendor != "sqlite":
        db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_{suffix}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        _disconnect_everyone(connection)
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _disconnect_everyone(connection: Any) -> None:
    """Close this process's pooled connections and end the others' (a worker that is still
    shutting down): PostgreSQL refuses to drop a database anyone is connected to."""
    connection.close()
    if connection.vendor != "postgresql":
        return
    if hasattr(connection, "close_pool"):
        connection.close_pool()
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
