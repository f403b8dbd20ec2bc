"""The workflow admin's forms: a JSON field that says where the JSON breaks, rules, workflows,
import and test runs."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from apps.segments.filtering import FilterError, parse_filter
from apps.workflows.admin.rendering import error_text
from apps.workflows.graph import graph_errors
from apps.workflows.models import Rule, Workflow, empty_graph
from apps.workflows.privacy import private_read_error

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MONOSPACE = "font-family:monospace"


class JSONTextField(forms.JSONField):
    """A JSON textarea, pretty-printed, whose parse errors say where the JSON breaks."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 24, "cols": 100, "style": MONOSPACE})
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            try:
                json.loads(value)
            except (TypeError, json.JSONDecodeError) as exc:
                detail = (
                    f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
                    if isinstance(exc, json.JSONDecodeError)
                    else str(exc)
                )
                raise ValidationError(f"Not valid JSON: {detail}", code="invalid") from None
            raise

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)


class RuleAdminForm(forms.ModelForm):
    condition = JSONTextField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 90, "style": MONOSPACE}),
        help_text='A filter on the event and its profile, e.g. {"property": '
        '"event.properties.plan", "operator": "is", "value": "pro"}. Empty: every event.',
    )

    class Meta:
        model = Rule
        fields = ["name", "event_name", "source", "workflow", "condition", "enabled", "priority"]

    def clean_condition(self) -> Any:
        condition = self.cleaned_data.get("condition")
        if condition in (None, {}, ""):
            return None
        try:
            tree = parse_filter(condition, scope="event").tree
        except FilterError as exc:
            where = f"{exc.leaf}: " if exc.leaf else ""
            raise ValidationError(f"{where}{exc.reason}") from None
        refused = private_read_error(getattr(self, "user", None), condition=tree)
        if refused:
            raise ValidationError(refused)
        return tree


class WorkflowAdminForm(forms.ModelForm):
    graph = JSONTextField(
        initial=empty_graph,
        help_text='The draft: {"nodes": [{"id", "action", "config"}], "edges": [{"from", '
        '"port", "to"}]}. Saving checks it; runs use the published version until you publish.',
    )

    class Meta:
        model = Workflow
        fields = ["name", "description", "graph"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What clean_graph found, for the picture to outline the nodes at fault.
        self.graph_errors: list[dict[str, Any]] = []

    def clean_graph(self) -> Any:
        """The graph, or every error in it (each naming its node and field) under the field."""
        graph = self.cleaned_data.get("graph")
        self.graph_errors = graph_errors(graph)
        if self.graph_errors:
            raise ValidationError([error_text(e) for e in self.graph_errors])
        refused = private_read_error(getattr(self, "user", None), graph=graph)
        if refused:
            raise ValidationError(refused)
        return graph


class ImportForm(forms.Form):
    file = forms.FileField(required=False, help_text="A file saved with Export JSON.")
    document = JSONTextField(
        required=False,
        label="Or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 16, "cols": 100, "style": MONOSPACE}),
    )
    name = forms.CharField(
        max_length=200, required=False, help_text="Empty: the name in the export."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                self.add_error("file", "The file is larger than 2 MB")
                return data
            try:
                data["document"] = json.loads(upload.read().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self.add_error("file", f"Not a JSON file: {exc}")
        elif data.get("document") in (None, "") and not self.errors:
            self.add_error("document", "Choose a file or paste the JSON")
        return data


class TestForm(forms.Form):
    event = JSONTextField(
        initial={"event_name": "signup", "properties": {"plan": "pro"}},
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "style": MONOSPACE}),
        help_text="event_name, properties, and optionally distinct_id, context, timestamp.",
    )
    distinct_id = forms.CharField(
        max_length=200,
        required=False,
        help_text="Whose profile the test uses (a new person when unknown).",
    )
    traits = JSONTextField(
        required=False,
        label="Traits (test only)",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90, "style": MONOSPACE}),
        help_text='Set on the profile for this test, e.g. {"plan": "pro"}.',
    )

    def clean_event(self) -> dict[str, Any]:
        event = self.cleaned_data.get("event")
        if not isinstance(event, dict):
            raise ValidationError("The event is a JSON object")
        return event

    def clean_traits(self) -> dict[str, Any] | None:
        traits = self.cleaned_data.get("traits")
        if traits in (None, ""):
            return None
        if not isinstance(traits, dict):
            raise ValidationError("Traits are a JSON object")
        return traits
