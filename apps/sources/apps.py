"""App config for event sources."""

from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _source_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from apps.sources.selectors import source_cache_clear
    from apps.sources.services import source_cache_changed

    key = instance.write_key
    source_cache_clear(key)  # this thread sees its own change at once
    transaction.on_commit(lambda: source_cache_changed(write_keys=[key]))


class SourcesConfig(AppConfig):
    name = "apps.sources"
    verbose_name = "Event sources"

    def ready(self) -> None:
        # Every save reaches the tracking endpoints' cache: the admin's and the API's too,
        # which save the model directly.
        post_save.connect(_source_changed, sender="sources.EventSource", dispatch_uid="src-c")
        post_delete.connect(_source_changed, sender="sources.EventSource", dispatch_uid="src-d")
