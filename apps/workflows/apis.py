"""Management API for routing rules, workflows (draft, publish, restore, export/import, test
runs), their runs with node traces, and the action registry."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.segments.filtering import (
    FilterError,
    filter_redacted,
    filter_references_private,
    parse_filter,
    parse_text,
    to_text,
)
from apps.segments.filtering.text import MAX_TEXT_LENGTH
from apps.sources.models import EventSource
from apps.workflows import editor, import_export, selectors, services
from apps.workflows.graph import graph_errors
from apps.workflows.models import Rule, RunStatus, Workflow, WorkflowRun, WorkflowVersion
from apps.workflows.privacy import (
    graph_references_private,
    run_private_values,
    trial_result_redacted,
)
from cdp.audit import AuditMixin
from cdp.errors import DomainError
from cdp.pagination import NewestFirstCursorPagination
from cdp.permissions import require_perm, requires
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private, redact_json

# --- serializers --------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True, help_text="The node at fault, if one.")
    field = serializers.CharField(allow_null=True, help_text="The field (a JSON path).")
    message = serializers.CharField()


class RuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rule
        fields = [
            "id",
            "name",
            "event_name",
            "source",
            "condition",
            "workflow",
            "enabled",
            "priority",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if data.get("condition") and not can_see_private(getattr(request, "user", None)):
            data["condition"] = filter_redacted(data["condition"])
        return data


class RuleInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    workflow = serializers.PrimaryKeyRelatedField(queryset=Workflow.objects.all())
    event_name = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="Blank: any event."
    )
    # A field named like Field.source: the serializer's metaclass takes it out of the class.
    source = serializers.PrimaryKeyRelatedField(  # type: ignore[assignment]
        queryset=EventSource.objects.all(),
        required=False,
        allow_null=True,
        help_text="Null: any source.",
    )
    condition = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="A filter-language tree over the event and its profile; null: always.",
    )
    enabled = serializers.BooleanField(required=False)
    priority = serializers.IntegerField(
        required=False, help_text="Higher runs first when several rules match an event."
    )


class VersionSerializer(serializers.ModelSerializer):
    published_by = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowVersion
        fields = ["number", "published_at", "published_by"]

    def get_published_by(self, version: WorkflowVersion) -> str | None:
        return version.published_by.get_username() if version.published_by else None


class WorkflowSerializer(serializers.ModelSerializer):
    published_version = serializers.SerializerMethodField()
    unpublished_changes = serializers.SerializerMethodField(
        help_text="Whether the draft differs from the published version."
    )

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "graph",
            "published_version",
            "unpublished_changes",
            "created_at",
            "updated_at",
        ]

    def get_published_version(self, workflow: Workflow) -> int | None:
        version = workflow.published_version
        return version.number if version else None

    def get_unpublished_changes(self, workflow: Workflow) -> bool:
        version = workflow.published_version
        return version is None or version.graph != workflow.graph


class WorkflowDetailSerializer(WorkflowSerializer):
    versions = serializers.SerializerMethodField()

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "versions"]

    def get_versions(self, workflow: Workflow) -> list[dict[str, Any]]:
        versions = selectors.workflow_versions(workflow)
        return VersionSerializer(versions, many=True).data  # type: ignore[return-value]


class WorkflowCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    graph = serializers.JSONField(
        required=False,
        help_text='{"nodes": [{"id", "action", "config"}], "edges": [{"from", "port", "to"}]}; '
        "default: a lone start node.",
    )


class WorkflowUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    graph = serializers.JSONField(required=False, help_text="The new draft graph.")


class WorkflowExportSerializer(serializers.Serializer):
    """The document export gives and import takes (see import_export.py)."""

    format = serializers.CharField(help_text=f'"{import_export.FORMAT}"')
    format_version = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True)
    graph = serializers.JSONField()
    published_version = serializers.IntegerField(
        allow_null=True, help_text="The published version when exported (not imported)."
    )
    exported_at = serializers.DateTimeField()


class RestoreSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version number to restore.")


class TestProfileSerializer(serializers.Serializer):
    distinct_id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Whose profile the test uses (a new person when unknown).",
    )
    traits = serializers.DictField(
        required=False, help_text="Traits set on the profile for this test only."
    )


class TestRequestSerializer(serializers.Serializer):
    event = serializers.DictField(
        help_text="The event: event_name, distinct_id (or from profile), properties, context, "
        "timestamp, category."
    )
    profile = TestProfileSerializer(required=False)


class TraceSerializer(serializers.Serializer):
    node = serializers.CharField()
    action = serializers.CharField()
    input = serializers.JSONField(allow_null=True)
    port = serializers.CharField(allow_blank=True)
    output = serializers.JSONField(allow_null=True)
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()


class TestResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices)
    error = serializers.CharField(allow_blank=True)
    duration_ms = serializers.IntegerField()
    variables = serializers.DictField()
    changes = serializers.ListField(
        child=serializers.DictField(), help_text="What the run would change (rolled back)."
    )
    requests = serializers.ListField(
        child=serializers.DictField(), help_text="HTTP requests, recorded and not sent."
    )
    profile_after = serializers.DictField(allow_null=True)
    trace = TraceSerializer(many=True)


class NodeTraceSerializer(serializers.Serializer):
    node = serializers.CharField(source="node_id")
    action = serializers.CharField()
    input = serializers.JSONField(allow_null=True)
    port = serializers.CharField(allow_blank=True)
    output = serializers.JSONField(allow_null=True)
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()


class RunSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()
    event = serializers.IntegerField(source="event_ref", allow_null=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow",
            "version",
            "rule",
            "event",
            "distinct_id",
            "profile_id",
            "status",
            "depth",
            "test",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "error",
        ]

    def get_version(self, run: WorkflowRun) -> int | None:
        return run.version.number if run.version else None


class RunDetailSerializer(RunSerializer):
    traces = NodeTraceSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "variables", "traces"]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if not can_see_private(getattr(request, "user", None)):
            values = run_private_values(instance)
            for field in ("variables", "traces", "error"):
                data[field] = redact_json(data[field], values)
        return data


class ActionSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField(help_text="Where the editor's palette lists it.")
    icon = serializers.CharField(allow_blank=True, help_text="The editor's icon name.")
    ports = serializers.ListField(child=serializers.CharField())
    config_schema = serializers.DictField(help_text="The JSON schema of the node's config.")
    concurrent = serializers.BooleanField(help_text="Runs in a thread of the run (I/O).")
    templated = serializers.BooleanField(help_text="Its string values are templates.")


class ValidateRequestSerializer(serializers.Serializer):
    graph = serializers.JSONField(help_text="A graph to check (nothing is saved).")


class ValidateResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    # Named like Serializer.errors: the metaclass takes declared fields out of the class.
    errors = ErrorDetailSerializer(many=True)  # type: ignore[assignment]


class FilterTextRequestSerializer(serializers.Serializer):
    text = serializers.CharField(
        required=False,
        allow_blank=False,
        max_length=MAX_TEXT_LENGTH,
        help_text="A filter in the text form, to parse.",
    )
    filter = serializers.JSONField(required=False, help_text="A filter tree, to print as text.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("text" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError({"text": "give either text or filter"})
        return attrs


class FilterProblemSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The leaf at fault.")
    position = serializers.IntegerField(allow_null=True, help_text="The character (text).")


class FilterTextSerializer(serializers.Serializer):
    filter = serializers.JSONField(allow_null=True, help_text="The normalized tree.")
    text = serializers.CharField(allow_null=True, help_text="The tree in the text form.")
    error = FilterProblemSerializer(allow_null=True, help_text="Why the filter is invalid.")


class PathsSerializer(serializers.Serializer):
    paths = serializers.ListField(
        child=serializers.CharField(), help_text="event., profile. and session. paths."
    )


class DiffChangedSerializer(serializers.Serializer):
    node = serializers.CharField()
    # Named like Serializer.fields: the metaclass takes declared fields out of the class.
    fields = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]


class DiffSerializer(serializers.Serializer):
    published_version = serializers.IntegerField(allow_null=True)
    added = serializers.ListField(child=serializers.CharField(), help_text="Node ids.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Node ids.")
    changed = DiffChangedSerializer(many=True)
    edges_added = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text='Each {"from", "port", "to"}.',
    )
    edges_removed = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text='Each {"from", "port", "to"}.',
    )


# --- views --------------------------------------------------------------------------------------


class RunCursorPagination(NewestFirstCursorPagination):
    ordering = ("-created_at", "-id")


STATUS_PARAM = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=RunStatus.values, description="Only runs in this status."
)


def refuse_private_reads(request: Request, *, condition: Any = None, graph: Any = None) -> None:
    """403 when a rule's condition or a workflow's graph reads private traits and the user
    may not see them (running it, or testing it, would show them the values)."""
    if filter_references_private(condition):
        require_perm(request.user, VIEW_PRIVATE_TRAITS, "A condition on private traits")
    if graph is not None and graph_references_private(graph):
        require_perm(request.user, VIEW_PRIVATE_TRAITS, "A workflow that reads private traits")


class RuleViewSet(AuditMixin, viewsets.GenericViewSet):
    """Routing rules: a processed event matching one starts the rule's workflow."""

    permission_model = Rule
    serializer_class = RuleSerializer
    filterset_fields = ["workflow", "enabled", "event_name"]

    def get_queryset(self):
        return selectors.rule_list().order_by("-id")

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = RuleSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(request=RuleInputSerializer, responses={201: RuleSerializer})
    def create(self, request: Request) -> Response:
        body = RuleInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refuse_private_reads(request, condition=body.validated_data.get("condition"))
        rule = services.rule_create(**body.validated_data)
        data = RuleSerializer(rule, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(RuleSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(request=RuleInputSerializer, responses=RuleSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        rule = self.get_object()
        body = RuleInputSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        refuse_private_reads(request, condition=body.validated_data.get("condition"))
        rule = services.rule_update(rule=rule, **body.validated_data)
        return Response(RuleSerializer(rule, context={"request": request}).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.rule_delete(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(responses=WorkflowSerializer(many=True)),
    retrieve=extend_schema(responses=WorkflowDetailSerializer),
)
class WorkflowViewSet(AuditMixin, viewsets.GenericViewSet):
    """Workflows: edits change the draft; runs use the published version."""

    permission_model = Workflow
    # Rolled back or read-only: they change nothing.
    audit_skip_actions = frozenset({"test", "validate", "filter_text"})
    serializer_class = WorkflowSerializer

    def get_queryset(self):
        return selectors.workflow_list().order_by("-id")

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WorkflowSerializer(page, many=True).data)

    def _detail(self, workflow: Workflow, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(WorkflowDetailSerializer(workflow).data, status=status_code)

    @extend_schema(request=WorkflowCreateSerializer, responses={201: WorkflowDetailSerializer})
    def create(self, request: Request) -> Response:
        """Create a workflow; the graph is validated (400 naming each node and field at
        fault) and nothing is saved when it is invalid."""
        body = WorkflowCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refuse_private_reads(request, graph=body.validated_data.get("graph"))
        workflow = services.workflow_create(**body.validated_data)
        return self._detail(workflow, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._detail(self.get_object())

    @extend_schema(request=WorkflowUpdateSerializer, responses=WorkflowDetailSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Edit the draft. An invalid graph is refused with every error, nothing saved."""
        workflow = self.get_object()
        body = WorkflowUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        refuse_private_reads(request, graph=body.validated_data.get("graph"))
        workflow = services.workflow_update_draft(workflow=workflow, **body.validated_data)
        return self._detail(workflow)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.workflow_delete(workflow=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: VersionSerializer})
    @requires("workflows.publish_workflow")
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Publish the draft as the next version (refused, 400, when the draft is invalid)."""
        version = services.workflow_publish(workflow=self.get_object(), user=request.user)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RestoreSerializer, responses=WorkflowDetailSerializer)
    @requires("workflows.publish_workflow")
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        """Publish an earlier version again; the draft becomes a copy of it."""
        workflow = self.get_object()
        body = RestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        number = body.validated_data["version"]
        version = selectors.workflow_versions(workflow).filter(number=number).first()
        if version is None:
            raise DomainError(
                f"the workflow has no version {number}",
                field="version",
                code="not_found",
                status_code=404,
            )
        services.workflow_restore(workflow=workflow, version=version, user=request.user)
        return self._detail(workflow)

    @extend_schema(responses=WorkflowExportSerializer)
    @requires("workflows.view_workflow")
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        """The workflow as a JSON document that import takes (its draft graph)."""
        workflow = self.get_object()
        response = Response(import_export.workflow_export(workflow=workflow))
        response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}.json"'
        return response

    @extend_schema(request=WorkflowExportSerializer, responses={201: WorkflowDetailSerializer})
    @requires("workflows.add_workflow")
    @action(detail=False, methods=["post"], url_path="import", url_name="import")
    def import_(self, request: Request) -> Response:
        """Create a workflow from an export (its draft; publish it to run it)."""
        document = request.data
        refuse_private_reads(
            request, graph=document.get("graph") if isinstance(document, dict) else None
        )
        workflow = import_export.workflow_import(document=document)
        return self._detail(workflow, status.HTTP_201_CREATED)

    @extend_schema(request=TestRequestSerializer, responses=TestResultSerializer)
    @requires("workflows.view_workflow", "workflows.run_workflow_test")
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Run the draft for an event and a profile inside a transaction that is rolled back
        (HTTP calls recorded, not sent; delays skipped) and return the full trace."""
        workflow = self.get_object()
        body = TestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refuse_private_reads(request, graph=workflow.graph)
        profile = body.validated_data.get("profile") or {}
        result = services.workflow_test_as(
            workflow=workflow,
            event=body.validated_data["event"],
            distinct_id=profile.get("distinct_id"),
            traits=profile.get("traits"),
        )
        if not can_see_private(request.user):
            result = trial_result_redacted(result)
        return Response(result)

    @extend_schema(request=ValidateRequestSerializer, responses=ValidateResultSerializer)
    @requires("workflows.view_workflow")
    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        """Check a graph as saving and publishing would (`graph_validate`) without saving it:
        every error names its node and field. The editor calls it as the graph changes."""
        body = ValidateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        errors = graph_errors(body.validated_data["graph"])
        return Response({"valid": not errors, "errors": errors})

    @extend_schema(request=FilterTextRequestSerializer, responses=FilterTextSerializer)
    @requires("workflows.view_workflow")
    @action(detail=False, methods=["post"], url_path="filter-text", url_name="filter-text")
    def filter_text(self, request: Request) -> Response:
        """Parse a condition's filter from the text form, or print a tree as text. A filter
        that does not parse is the answer, not a bad request: `error` says why and where
        (`position`: the character, for text), as the editor shows it while one types."""
        body = FilterTextRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        text = body.validated_data.get("text")
        try:
            if text is not None:
                tree = parse_text(text, scope="event")
            else:
                tree = parse_filter(body.validated_data["filter"], scope="event").tree
        except FilterError as exc:
            problem: dict[str, Any] = {
                "code": exc.code,
                "message": exc.reason,
                "field": exc.leaf or None,
                "position": exc.position,
            }
            return Response({"filter": None, "text": text, "error": problem})
        return Response({"filter": tree, "text": to_text(tree), "error": None})

    @extend_schema(responses=PathsSerializer)
    @requires("workflows.view_workflow", "events.view_event")
    @action(detail=False, methods=["get"])
    def paths(self, request: Request) -> Response:
        """The template paths seen in recent events and profiles, for autocompletion; private
        traits only with the permission to see them."""
        return Response({"paths": editor.known_paths(private=can_see_private(request.user))})

    @extend_schema(responses=DiffSerializer)
    @requires("workflows.view_workflow")
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None) -> Response:
        """The draft against the published version: nodes added, removed and changed (the
        fields that differ), edges added and removed; positions are not changes."""
        workflow = self.get_object()
        version = workflow.published_version
        diff = editor.graph_diff(version.graph if version else None, workflow.graph)
        return Response({"published_version": version.number if version else None, **diff})

    @extend_schema(parameters=[STATUS_PARAM], responses=RunSerializer(many=True))
    @requires("workflows.view_workflow", "workflows.view_workflowrun")
    @action(detail=True, methods=["get"], pagination_class=RunCursorPagination)
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """The workflow's runs, newest first."""
        runs = selectors.run_list(workflow=self.get_object())
        runs = _status_filtered(runs, request.query_params.get("status"))
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)


def _status_filtered(runs: QuerySet[WorkflowRun], value: str | None) -> QuerySet[WorkflowRun]:
    if not value:
        return runs
    if value not in RunStatus.values:
        raise DomainError(
            f"unknown status {value!r} (one of: {', '.join(RunStatus.values)})", field="status"
        )
    return runs.filter(status=value)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            STATUS_PARAM,
            OpenApiParameter("workflow", OpenApiTypes.INT, description="Runs of this workflow."),
            OpenApiParameter("event", OpenApiTypes.INT, description="Runs for this event id."),
        ]
    )
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Workflow runs, with their node traces in the detail."""

    permission_model = WorkflowRun
    pagination_class = RunCursorPagination

    def get_queryset(self):
        if self.action == "retrieve":
            return selectors.run_with_traces()
        params = self.request.query_params
        workflow = None
        if params.get("workflow"):
            workflow = get_object_or_404(Workflow, pk=_int_param(params["workflow"], "workflow"))
        event_id = _int_param(params["event"], "event") if params.get("event") else None
        runs = selectors.run_list(workflow=workflow, event_id=event_id)
        return _status_filtered(runs, params.get("status"))

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer


def _int_param(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DomainError(f"{name} must be an integer", field=name) from None


class ActionViewSet(viewsets.ViewSet):
    """The action registry (built-in and plugin actions)."""

    permission_model = Workflow  # reading the registry is part of reading workflows

    @extend_schema(responses=ActionSerializer(many=True))
    def list(self, request: Request) -> Response:
        """Every action a node can use, with its output ports and config schema."""
        return Response(ActionSerializer(selectors.action_list(), many=True).data)
