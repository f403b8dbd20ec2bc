"""Recompute dynamic segments now (all, or those named), with a progress bar."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.segments import selectors, services
from cdp.errors import DomainError


class Command(BaseCommand):
    help = "Recompute dynamic segments set-wise: recompute_segments [KEY ...] (default: all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", metavar="KEY", help="segment keys (default: all)")

    def handle(self, *args: Any, keys: list[str], **options: Any) -> None:
        query = selectors.segment_dynamic_list()
        if keys:
            query = query.filter(key__in=keys)
            missing = sorted(set(keys) - set(query.values_list("key", flat=True)))
            if missing:
                raise CommandError(f"No dynamic segment with key(s): {', '.join(missing)}")
        segments = services.segments_in_dependency_order(query)
        failed = 0
        progress = tqdm(segments, unit="segment", disable=options["verbosity"] == 0)
        for segment in progress:
            progress.set_description(segment.key)
            try:
                result = services.segment_recompute(segment=segment)
            except DomainError as exc:
                failed += 1
                self.stderr.write(f"{segment.key}: {exc.message}")
                continue
            progress.write(
                f"{result.key}: {result.members} members "
                f"(+{result.entered} entered, -{result.exited} exited)"
            )
        if failed:
            raise CommandError(f"{failed} segment(s) could not be recomputed")
