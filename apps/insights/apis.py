"""The insights API: POST a query, get the result (POST /api/v1/insights/{trends,funnels,
retention,paths}), and the people behind a funnel step or a retention cell. Nothing is stored."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.insights.queries import (
    RUNNERS,
    FunnelRunner,
    QueryError,
    QueryRunner,
    RetentionRunner,
)
from apps.insights.queries.base import Reader

# Running a query reads every event and profile it touches: the roles that may view saved
# insights may run them.
RUN_PERMISSION = "insights.view_savedinsight"


class CanRunInsights(BasePermission):
    message = f"You need the {RUN_PERMISSION} permission to run insights."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm(RUN_PERMISSION))


PEOPLE_PERMISSION = "profiles.view_profile"


class CanSeePeople(BasePermission):
    """The people behind a funnel step or a retention cell are profiles: as the dashboard's
    people panel, they need the profiles' view permission too."""

    message = f"You need the {PEOPLE_PERMISSION} permission to see the people of an insight."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm(PEOPLE_PERMISSION))


ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT, description='{"error": {"code", "message", "field"}}: a bad query'
)
EXAMPLES = {
    "trends": {
        "series": [{"event": "page_view", "math": "unique_people"}],
        "interval": "day",
        "date_from": "-30d",
        "breakdown": {"type": "event", "key": "utm_source"},
        "filter": 'event.properties.plan is "pro"',
    },
    "funnels": {
        "steps": [{"event": "signup"}, {"event": "activate"}, {"event": "purchase"}],
        "window": {"value": 14, "unit": "day"},
        "mode": "ordered",
        "date_from": "-30d",
    },
    "retention": {
        "start": {"event": "signup"},
        "return": {"event": "page_view"},
        "retention_type": "first_time",
        "period": "week",
        "periods": 8,
        "date_from": "-8w",
    },
    "paths": {"start_point": "/pricing", "steps": 5, "date_from": "-7d"},
}


def _body(request: Request) -> Any:
    data = request.data
    if not isinstance(data, dict):
        raise QueryError("", "the body must be a JSON object")
    return data


class InsightQueryView(APIView):
    """Run one kind of insight query; the body is the query (see docs/insights.md)."""

    permission_classes = [IsAuthenticated, CanRunInsights]
    kind = ""

    def post(self, request: Request) -> Response:
        runner: QueryRunner[Any, Any] = RUNNERS[self.kind].from_dict(_body(request))
        return Response(runner.run().as_dict())


def _query_view(kind: str) -> type[InsightQueryView]:
    view = extend_schema_view(
        post=extend_schema(
            operation_id=f"insights_{kind}",
            summary=f"Run a {kind} query",
            request=OpenApiTypes.OBJECT,
            responses={200: OpenApiTypes.OBJECT, 400: ERROR},
            examples=[OpenApiExample(kind, value=EXAMPLES[kind], request_only=True)],
            tags=["insights"],
        )
    )(type(f"{kind.title()}QueryView", (InsightQueryView,), {"kind": kind}))
    return view


TrendsQueryView = _query_view("trends")
FunnelsQueryView = _query_view("funnels")
RetentionQueryView = _query_view("retention")
PathsQueryView = _query_view("paths")

PEOPLE_RESPONSE = OpenApiResponse(
    OpenApiTypes.OBJECT, description='{"people": [profile id, ...], "next_offset": int | null}'
)


def _page(reader: Reader) -> tuple[int, int]:
    return (
        reader.integer("limit", default=100, low=1, high=1000),
        reader.integer("offset", default=0, low=0, high=10_000_000),
    )


def _people_response(people: list[str], limit: int, offset: int) -> Response:
    next_offset = offset + limit if len(people) == limit else None
    return Response({"people": people, "next_offset": next_offset})


class FunnelPeopleView(APIView):
    """The people who converted at a funnel step, or dropped before it."""

    permission_classes = [IsAuthenticated, CanRunInsights, CanSeePeople]

    @extend_schema(
        operation_id="insights_funnels_people",
        summary="People of a funnel step",
        request=OpenApiTypes.OBJECT,
        responses={200: PEOPLE_RESPONSE, 400: ERROR},
        examples=[
            OpenApiExample(
                "dropped at step 2",
                value={"query": EXAMPLES["funnels"], "step": 1, "status": "dropped"},
                request_only=True,
            )
        ],
        tags=["insights"],
    )
    def post(self, request: Request) -> Response:
        reader = Reader(
            _body(request),
            allowed=frozenset({"query", "step", "status", "breakdown_value", "limit", "offset"}),
        )
        runner = FunnelRunner.from_dict(reader.raw("query") or {})
        assert isinstance(runner, FunnelRunner)
        limit, offset = _page(reader)
        people = runner.people(
            step=reader.integer("step", default=0, low=0, high=9),
            status=reader.choice("status", ("converted", "dropped"), "converted"),
            breakdown_value=reader.string("breakdown_value", max_length=1000),
            limit=limit,
            offset=offset,
        )
        return _people_response(people, limit, offset)


class RetentionPeopleView(APIView):
    """The people of a retention cell: a cohort (0-based) and a period after it."""

    permission_classes = [IsAuthenticated, CanRunInsights, CanSeePeople]

    @extend_schema(
        operation_id="insights_retention_people",
        summary="People of a retention cell",
        request=OpenApiTypes.OBJECT,
        responses={200: PEOPLE_RESPONSE, 400: ERROR},
        examples=[
            OpenApiExample(
                "second cohort, back in period 1",
                value={"query": EXAMPLES["retention"], "cohort": 1, "period": 1},
                request_only=True,
            )
        ],
        tags=["insights"],
    )
    def post(self, request: Request) -> Response:
        reader = Reader(
            _body(request), allowed=frozenset({"query", "cohort", "period", "limit", "offset"})
        )
        runner = RetentionRunner.from_dict(reader.raw("query") or {})
        assert isinstance(runner, RetentionRunner)
        limit, offset = _page(reader)
        people = runner.people(
            cohort=reader.integer("cohort", default=0, low=0, high=10_000),
            period=reader.integer("period", default=0, low=0, high=10_000),
            limit=limit,
            offset=offset,
        )
        return _people_response(people, limit, offset)
