"""The insight query runners: a validated query object in, a result object out.

Used by the dashboard pages and by POST /api/v1/insights/{trends,funnels,retention,paths}.
Semantics, SQL forms and measurements: docs/insights.md.

Interface (everything below is importable from `apps.insights.queries`):

    query = TrendsQuery.from_dict(data)       # raises QueryError (a DomainError: 400,
    result = run_trends(query)                # .code "invalid_query" or "invalid_filter",
    result.as_dict()                          # .field the dotted path, .reason the why)

    FunnelQuery.from_dict / run_funnel / funnel_people(query, step=, status="converted"|"dropped",
                                                        breakdown_value=None, limit=100, offset=0)
    RetentionQuery.from_dict / run_retention / retention_people(query, cohort=, period=, ...)
    PathsQuery.from_dict / run_paths
    RUNNERS["trends"|"funnels"|"retention"|"paths"] -> the QueryRunner subclass
    (`Runner.from_dict(data).run()`; the base class owns validation, the cache and limits).

Query JSON (every kind): `date_from` / `date_to` (ISO date = whole local day, date_to
inclusive; ISO date-time; presets today, yesterday, this_week, this_month, all; or -N[h|d|w|m|y];
date_to defaults to now), `timezone` (IANA; default settings.TIME_ZONE), `filter` (an event
filter in the filter language: JSON tree or its text form, applied to every event read).
Events keep their distinct_id; a person is the profile the identity table maps it to (merged
ids count as one person). Event name "*" means any event (platform events aside).

- trends: `series` [1..10] of {event, math: total|unique_people|sum|avg|min|max|median,
  property (for the property maths), filter, name}; `interval` hour|day|week|month;
  `breakdown` {type: event|trait|group, key} or {type: segment}; `compare` (bool).
  Result: {"results": [{label, series_index, event, math, breakdown_value ("" = not set,
  "$other" = the rest after the top 10), compare (null|"current"|"previous"), days [ISO local
  period starts], data [numbers], total}]}.
- funnels: `steps` [2..10] of {event, filter, name}; `window` {value, unit:
  minute|hour|day|week} (default 14 days, max 90); `mode` ordered|strict; `exclusions` [{event,
  filter, from_step, to_step}] (0-based); `breakdown` {type: event|trait, key} (first touch).
  Result: {"steps": [{index, label, event, count, conversion_from_first,
  conversion_from_previous, dropped, average_seconds, median_seconds}], "breakdowns":
  [{breakdown_value, steps: [...]}]}.
- retention: `start` {event, filter}, `return` {event, filter}, `retention_type`
  first_time|recurring, `period` day|week|month, `periods` (columns, 1..60, default 8); cohorts
  are the periods from date_from to date_to. Result: {"cohorts": [{date, size, values,
  percentages}]} (values[0] is the cohort size; only periods that have begun are listed).
- paths: `start_point` or `end_point` (an event name, or a page path for page_view), `steps`
  (2..10), `event_names` (only these events), `max_links`. Result: {"nodes": [{name, step, item,
  value}], "links": [{source, target, value}]} counting sessions (30 minutes of inactivity
  ends one).
"""

from apps.insights.queries.base import DateRange, QueryError, QueryRunner
from apps.insights.queries.funnels import (
    FunnelQuery,
    FunnelResult,
    FunnelRunner,
    funnel_people,
    run_funnel,
)
from apps.insights.queries.paths import PathsQuery, PathsResult, PathsRunner, run_paths
from apps.insights.queries.retention import (
    RetentionQuery,
    RetentionResult,
    RetentionRunner,
    retention_people,
    run_retention,
)
from apps.insights.queries.trends import TrendsQuery, TrendsResult, TrendsRunner, run_trends

RUNNERS: dict[str, type[QueryRunner]] = {
    "trends": TrendsRunner,
    "funnels": FunnelRunner,
    "retention": RetentionRunner,
    "paths": PathsRunner,
}

__all__ = [
    "RUNNERS",
    "DateRange",
    "FunnelQuery",
    "FunnelResult",
    "FunnelRunner",
    "PathsQuery",
    "PathsResult",
    "PathsRunner",
    "QueryError",
    "QueryRunner",
    "RetentionQuery",
    "RetentionResult",
    "RetentionRunner",
    "TrendsQuery",
    "TrendsResult",
    "TrendsRunner",
    "funnel_people",
    "retention_people",
    "run_funnel",
    "run_paths",
    "run_retention",
    "run_trends",
]
