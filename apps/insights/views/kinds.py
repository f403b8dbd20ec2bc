"""One page definition per insight kind: how the builder's form fields (GET parameters, so the
URL is the shareable state) become a query for the runner, and how its result becomes a chart
spec and a table. Registered by kind; the views are the same for all kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

MAX_FIELD = 2000


def _one(params: QueryDict, name: str, default: str = "") -> str:
    value = params.get(name, default)
    return (value if isinstance(value, str) else default)[:MAX_FIELD].strip()


def _many(params: QueryDict, name: str) -> list[str]:
    return [v[:MAX_FIELD].strip() for v in params.getlist(name)][:20]


def _int(params: QueryDict, name: str, default: int) -> int | str:
    raw = _one(params, name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return raw  # the runner names the field and says it must be an integer


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    links: list[str | None] = field(default_factory=list)  # a people link per row, if any


class InsightPage:
    """Subclasses set `kind`, `title`, `template`, and implement the four conversions."""

    kind: ClassVar[str]
    title: ClassVar[str]
    template: ClassVar[str]
    views: ClassVar[list[str]] = []
    choices: ClassVar[dict[str, Any]] = {}

    def query_from_params(self, params: QueryDict) -> dict[str, Any]:
        raise NotImplementedError

    def params_from_query(self, query: dict[str, Any]) -> list[tuple[str, str]]:
        raise NotImplementedError

    def run(self, query: dict[str, Any]) -> Any:
        raise NotImplementedError

    def chart(self, result: Any, query: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def table(self, result: Any, query: dict[str, Any]) -> Table:
        raise NotImplementedError

    def form(self, params: QueryDict) -> dict[str, Any]:
        """What the builder shows (the fields as submitted)."""
        return {key: params.getlist(key) for key in params}

    def has_input(self, params: QueryDict) -> bool:
        return bool(params)

    def people_url(self, query: dict[str, Any]) -> str:
        """The people list behind a point of the chart (kinds that have `people`)."""
        params = urlencode(self.params_from_query(query))
        return f"{reverse('insights:insight_people', args=[self.kind])}?{params}"


KINDS: dict[str, InsightPage] = {}


def register(cls: type[InsightPage]) -> type[InsightPage]:
    KINDS[cls.kind] = cls()
    return cls


def date_params(params: QueryDict, query: dict[str, Any], default_from: str = "-30d") -> None:
    query["date_from"] = _one(params, "date_from") or default_from
    date_to = _one(params, "date_to")
    if date_to:
        query["date_to"] = date_to


def date_back(query: dict[str, Any]) -> list[tuple[str, str]]:
    out = [("date_from", str(query.get("date_from") or ""))]
    if query.get("date_to"):
        out.append(("date_to", str(query["date_to"])))
    return out


def breakdown_params(params: QueryDict, query: dict[str, Any]) -> None:
    kind = _one(params, "breakdown_type")
    key = _one(params, "breakdown_key")
    if kind == "segment":
        query["breakdown"] = {"type": "segment"}
    elif kind:
        query["breakdown"] = {"type": kind, "key": key or None}


def breakdown_back(query: dict[str, Any]) -> list[tuple[str, str]]:
    breakdown = query.get("breakdown") or {}
    if not breakdown:
        return []
    out = [("breakdown_type", str(breakdown.get("type", "")))]
    if breakdown.get("key"):
        out.append(("breakdown_key", str(breakdown["key"])))
    return out
