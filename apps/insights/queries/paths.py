"""Paths: the most common sequences of steps people (and personless visitors) take in a
session (split at 30 minutes of inactivity), from a start point, up to an end point, or from
the session start; as Sankey nodes and links. A step is the event name, or for page_view
events the page path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.insights.queries.base import (
    DateRange,
    QueryError,
    QueryRunner,
    Reader,
    read_date_range,
    read_filter,
)
from apps.insights.queries.selection import IDENTITY_TABLE, events_queryset, select_sql
from apps.insights.queries.sql import epoch_us_sql, fetch, prepare
from apps.segments.filtering import Filter

SESSION_GAP_SECONDS = 30 * 60
PAGE_VIEW = "page_view"
MAX_STEPS = 10
MAX_LINKS = 200
MAX_EVENT_NAMES = 50


@dataclass(frozen=True)
class PathsQuery:
    date_range: DateRange
    start_point: str | None = None
    end_point: str | None = None
    steps: int = 5
    event_names: tuple[str, ...] = ()  # empty: every event (platform events aside)
    max_links: int = 50
    filter: Filter | None = None

    @classmethod
    def from_dict(cls, data: Any, *, now: datetime | None = None) -> PathsQuery:
        reader = Reader(
            data,
            allowed=frozenset(
                {
                    "start_point",
                    "end_point",
                    "steps",
                    "event_names",
                    "max_links",
                    "date_from",
                    "date_to",
                    "timezone",
                    "filter",
                    "kind",
                }
            ),
        )
        start = reader.string("start_point", max_length=1000)
        end = reader.string("end_point", max_length=1000)
        if start and end:
            raise QueryError("end_point", "give a start point or an end point, not both")
        names = []
        for path, item in reader.items("event_names", low=0, high=MAX_EVENT_NAMES):
            if not isinstance(item, str) or not item or len(item) > 255:
                raise QueryError(path, "must be an event name")
            names.append(item)
        return cls(
            date_range=read_date_range(reader, now=now),
            start_point=start,
            end_point=end,
            steps=reader.integer("steps", default=5, low=2, high=MAX_STEPS),
            event_names=tuple(names),
            max_links=reader.integer("max_links", default=50, low=1, high=MAX_LINKS),
            filter=read_filter(reader),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "paths",
            **self.date_range.as_dict(),
            "start_point": self.start_point,
            "end_point": self.end_point,
            "steps": self.steps,
            "event_names": list(self.event_names),
            "max_links": self.max_links,
            "filter": self.filter.tree if self.filter else None,
        }


@dataclass
class PathsResult:
    nodes: list[dict[str, Any]]  # {"name": "2_/pricing", "step": 2, "item": "/pricing", "value"}
    links: list[dict[str, Any]]  # {"source": node name, "target": node name, "value": sessions}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "paths", "nodes": self.nodes, "links": self.links}


def _item_sql(vendor: str) -> str:
    if vendor == "sqlite":
        page = (
            "COALESCE(CASE WHEN json_type(e.properties, '$.path') = 'text' "
            "THEN json_extract(e.properties, '$.path') END, "
            "CASE WHEN json_type(e.context, '$.page.path') = 'text' "
            "THEN json_extract(e.context, '$.page.path') END, e.event_name)"
        )
    else:
        page = (
            "COALESCE(CASE WHEN jsonb_typeof(e.properties -> 'path') = 'string' "
            "THEN e.properties ->> 'path' END, "
            "CASE WHEN jsonb_typeof(e.context -> 'page' -> 'path') = 'string' "
            "THEN e.context -> 'page' ->> 'path' END, e.event_name)"
        )
    return f"CASE WHEN e.event_name = '{PAGE_VIEW}' THEN {page} ELSE e.event_name END"


class PathsRunner(QueryRunner[PathsQuery, PathsResult]):
    kind = "paths"
    query_class = PathsQuery.from_dict

    def calculate(self) -> PathsResult:
        query = self.query
        vendor = prepare(self.using)
        rng = query.date_range
        queryset = events_queryset(
            using=self.using,
            names=list(query.event_names) or None,
            start=rng.start,
            end=rng.end,
            filters=[query.filter],
        )
        inner, params = select_sql(
            queryset,
            "id",
            "distinct_id",
            "timestamp",
            "event_name",
            "properties",
            "context",
            "personless",
        )
        epoch = epoch_us_sql(vendor, "e.timestamp")
        gap = SESSION_GAP_SECONDS * 1_000_000
        n = query.steps
        sql = (
            # A person's events are split into sessions; personless events (nobody's) are
            # split by their distinct_id, each its own visitor.
            f"WITH ev AS (SELECT CASE WHEN e.personless THEN '~' || e.distinct_id "
            f"ELSE CAST(pi.profile_id AS text) END AS person, e.id AS eid, {epoch} AS ts, "
            f"{_item_sql(vendor)} AS item FROM ({inner}) e "
            f"LEFT JOIN {IDENTITY_TABLE} pi ON pi.distinct_id = e.distinct_id "
            f"AND NOT e.personless WHERE e.personless OR pi.profile_id IS NOT NULL), "
            f"g AS (SELECT person, eid, ts, item, CASE WHEN ts - lag(ts) OVER "
            f"(PARTITION BY person ORDER BY ts, eid) <= {gap} THEN 0 ELSE 1 END AS brk FROM ev), "
            f"s AS (SELECT person, eid, ts, item, sum(brk) OVER (PARTITION BY person "
            f"ORDER BY ts, eid ROWS UNBOUNDED PRECEDING) AS sess FROM g), "
            f"r AS (SELECT person, sess, item, row_number() OVER (PARTITION BY person, sess "
            f"ORDER BY ts, eid) AS rn FROM s)"
        )
        if query.start_point:
            sql += (
                ", a AS (SELECT person, sess, min(rn) AS arn FROM r WHERE item = %s "
                "GROUP BY person, sess), "
                f"st AS (SELECT r.person, r.sess, r.rn - a.arn + 1 AS step, r.item FROM r "
                f"JOIN a ON a.person = r.person AND a.sess = r.sess "
                f"WHERE r.rn >= a.arn AND r.rn < a.arn + {n})"
            )
            params.append(query.start_point)
        elif query.end_point:
            sql += (
                ", a AS (SELECT person, sess, min(rn) AS arn FROM r WHERE item = %s "
                "GROUP BY person, sess), "
                f"st AS (SELECT r.person, r.sess, {n} - (a.arn - r.rn) AS step, r.item FROM r "
                f"JOIN a ON a.person = r.person AND a.sess = r.sess "
                f"WHERE r.rn <= a.arn AND r.rn > a.arn - {n})"
            )
            params.append(query.end_point)
        else:
            sql += f", st AS (SELECT person, sess, rn AS step, item FROM r WHERE rn <= {n})"
        sql += (
            ", nx AS (SELECT step, item, lead(item) OVER (PARTITION BY person, sess "
            "ORDER BY step) AS next FROM st) "
            "SELECT step, item, next, count(*) FROM nx GROUP BY step, item, next"
        )
        rows = fetch(self.using, sql, params)
        links = sorted(
            (
                (int(step), item, nxt, int(count))
                for step, item, nxt, count in rows
                if nxt is not None
            ),
            key=lambda row: (-row[3], row[0], row[1], row[2]),
        )[: query.max_links]
        node_values: dict[tuple[int, str], int] = {}
        for step, item, _nxt, count in rows:
            node_values[(int(step), item)] = node_values.get((int(step), item), 0) + int(count)
        kept: set[tuple[int, str]] = set()
        for step, item, nxt, _count in links:
            kept.add((step, item))
            kept.add((step + 1, nxt))
        if not links:
            kept = set(node_values)
        nodes = [
            {
                "name": f"{step}_{item}",
                "step": step,
                "item": item,
                "value": node_values[(step, item)],
            }
            for step, item in sorted(kept, key=lambda key: (key[0], -node_values[key], key[1]))
        ]
        return PathsResult(
            nodes=nodes,
            links=[
                {"source": f"{step}_{item}", "target": f"{step + 1}_{nxt}", "value": count}
                for step, item, nxt, count in links
            ],
        )


def run_paths(query: PathsQuery, *, use_cache: bool = True) -> PathsResult:
    return PathsRunner(query).run(use_cache=use_cache)
