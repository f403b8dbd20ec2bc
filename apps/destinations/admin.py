"""Admin for resources (write-only, masked credentials; a connection test; the internal flag
for admins holding its permission), destinations (delivery counts, a success-rate chart, a
mapping preview against a real profile or event, pause/resume, test send, replay) and the
delivery log."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.destinations import selectors, services
from apps.destinations.connections import (
    credentials_check,
    credentials_masked,
    credentials_merge,
)
from apps.destinations.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Destination,
    Resource,
    Trigger,
)
from apps.destinations.services.mapping import MappingError, event_view, mapped, profile_view
from apps.events.models import Event
from apps.profiles.models import Profile
from cdp.errors import DomainError
from cdp.privacy import can_see_private

MARK_INTERNAL = "destinations.mark_resource_internal"


def _json_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"}),
        help_text="A JSON object. Secrets are shown masked (********): leave a masked value "
        "as it is to keep the stored secret, or type the new one.",
    )


class ResourceForm(forms.ModelForm):
    credentials_input = _json_field("Credentials (production)")
    test_credentials_input = _json_field("Test credentials")

    class Meta:
        model = Resource
        fields = ["name", "kind", "description", "internal"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        resource = self.instance
        if resource.pk:
            for field in ("credentials", "test_credentials"):
                shown = credentials_masked(resource.kind, getattr(resource, field))
                self.fields[f"{field}_input"].initial = json.dumps(shown, indent=2)
            if "kind" in self.fields:
                self.fields["kind"].disabled = True

    def _parsed(self, field: str) -> dict[str, Any]:
        text = (self.cleaned_data.get(f"{field}_input") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError({f"{field}_input": f"Not JSON: {exc}"}) from None
        if not isinstance(value, dict):
            raise forms.ValidationError({f"{field}_input": "Must be a JSON object"})
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind") or self.instance.kind
        for field in ("credentials", "test_credentials"):
            sent = self._parsed(field)
            merged = credentials_merge(getattr(self.instance, field) or {}, sent)
            for where, message in credentials_check(kind, merged, field):
                raise forms.ValidationError({f"{field}_input": f"{where}: {message}"})
            cleaned[field] = merged
        if not cleaned.get("credentials"):
            raise forms.ValidationError({"credentials_input": "Production credentials are needed"})
        return cleaned


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    form = ResourceForm
    list_display = ["name", "kind", "internal", "has_test_credentials", "updated_at"]
    list_filter = ["kind", "internal"]
    search_fields = ["name", "description"]
    actions = ["test_connection"]

    def get_readonly_fields(self, request: HttpRequest, obj: Resource | None = None) -> Any:
        # The internal flag lets connections reach private addresses: its own permission.
        return [] if request.user.has_perm(MARK_INTERNAL) else ["internal"]

    @admin.display(boolean=True, description="test credentials")
    def has_test_credentials(self, obj: Resource) -> bool:
        return bool(obj.test_credentials)

    def save_model(self, request: HttpRequest, obj: Resource, form: Any, change: bool) -> None:
        data = form.cleaned_data
        internal = data.get("internal") if request.user.has_perm(MARK_INTERNAL) else None
        if change:
            saved = services.resource_update(
                resource=obj,
                name=data["name"],
                description=data.get("description", ""),
                credentials=data["credentials"],
                test_credentials=data["test_credentials"],
                internal=internal,
            )
        else:
            saved = services.resource_create(
                name=data["name"],
                kind=data["kind"],
                description=data.get("description", ""),
                credentials=data["credentials"],
                test_credentials=data["test_credentials"],
                internal=bool(internal),
            )
        obj.pk = saved.pk

    def has_test_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.test_resource")

    @admin.action(description="Test the connection", permissions=["test"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        for resource in queryset[:20]:
            for label, result in services.resource_test(resource=resource).items():
                level = messages.SUCCESS if result["ok"] else messages.ERROR
                self.message_user(request, f"{resource.name} ({label}): {result['message']}", level)


class DestinationForm(forms.ModelForm):
    class Meta:
        model = Destination
        fields = [
            "name",
            "kind",
            "resource",
            "trigger",
            "trigger_config",
            "mapping_mode",
            "mapping",
            "settings",
            "required_consents",
            "enabled",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        # The service checks everything; its first complaint shows on the form.
        from apps.destinations.services.definitions import _check

        values = {f: cleaned.get(f) for f in self.Meta.fields}
        for field in ("trigger_config", "mapping", "settings"):
            values[field] = values[field] or {}
        values["required_consents"] = values["required_consents"] or []
        try:
            _check(values)
        except DomainError as exc:
            field = (exc.field or "").split(".")[0]
            raise forms.ValidationError(
                {field: exc.message} if field in self.fields else exc.message
            ) from None
        return cleaned


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = [
        "name",
        "kind",
        "trigger",
        "enabled",
        "pending",
        "dead",
        "success_rate_24h",
        "circuit",
    ]
    list_filter = ["kind", "trigger", "enabled"]
    search_fields = ["name"]
    actions = ["pause", "resume", "replay_dead", "send_test"]
    readonly_fields = [
        "disabled_reason",
        "circuit",
        "delivery_counts",
        "success_chart",
        "mapping_preview",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        return super().get_queryset(request).select_related("resource")

    def get_readonly_fields(self, request: HttpRequest, obj: Destination | None = None) -> Any:
        return self.readonly_fields if obj else []

    def get_fields(self, request: HttpRequest, obj: Destination | None = None) -> Any:
        fields = list(DestinationForm.Meta.fields)
        return [*fields, *self.readonly_fields] if obj else fields

    @admin.display(description="pending")
    def pending(self, obj: Destination) -> int:
        unfinished = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]
        return obj.deliveries.filter(status__in=unfinished).count()

    @admin.display(description="dead")
    def dead(self, obj: Destination) -> int:
        return obj.deliveries.filter(status=DeliveryStatus.DEAD).count()

    @admin.display(description="success (24 h)")
    def success_rate_24h(self, obj: Destination) -> str:
        since = timezone.now() - timedelta(hours=24)
        attempts = DeliveryAttempt.objects.filter(destination=obj, at__gte=since)
        total = attempts.count()
        if not total:
            return "-"
        return f"{100.0 * attempts.filter(ok=True).count() / total:.1f}% of {total}"

    @admin.display(description="circuit")
    def circuit(self, obj: Destination) -> str:
        if obj.circuit_open_until and obj.circuit_open_until > timezone.now():
            return f"open until {obj.circuit_open_until:%Y-%m-%d %H:%M:%S}"
        return f"closed ({obj.consecutive_failures} failures in a row)"

    @admin.display(description="deliveries")
    def delivery_counts(self, obj: Destination) -> SafeString:
        counts = services.destination_counts(obj)
        return format_html_join(", ", "{}: {}", sorted(counts.items()))

    @admin.display(description="success rate (48 h)")
    def success_chart(self, obj: Destination) -> SafeString:
        series = selectors.destination_success_series(obj)
        if not series:
            return format_html("<p>No attempts in the last 48 hours.</p>")
        data = json.dumps(series)
        table = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((s["hour"], s["attempts"], s["succeeded"], s["rate"]) for s in series),
        )
        return format_html(
            '<div id="success-chart" style="width:720px;height:260px"></div>'
            '<script src="/static/vendor/echarts/echarts.min.js"></script>'
            '<script id="success-data" type="application/json">{}</script>'
            "<script>(function(){{var s=JSON.parse(document.getElementById('success-data')"
            ".textContent);var c=echarts.init(document.getElementById('success-chart'));"
            "c.setOption({{tooltip:{{trigger:'axis'}},xAxis:{{type:'category',"
            "data:s.map(function(r){{return r.hour.slice(5,16)}})}},yAxis:[{{type:'value',"
            "name:'%',max:100}},{{type:'value',name:'attempts'}}],series:[{{type:'line',"
            "name:'success %',data:s.map(function(r){{return r.rate}})}},{{type:'bar',"
            "yAxisIndex:1,name:'attempts',data:s.map(function(r){{return r.attempts}})}}]}})"
            "}})();</script>"
            "<details><summary>Table</summary><table><tr><th>hour</th><th>attempts</th>"
            "<th>succeeded</th><th>%</th></tr>{}</table></details>",
            mark_safe(data.replace("<", "\\u003c")),  # noqa: S308  (JSON, '<' escaped)
            table,
        )

    @admin.display(description="mapping preview")
    def mapping_preview(self, obj: Destination) -> SafeString:
        """The payload for a real profile or event: ?preview_profile=<id> or
        ?preview_event=<id> on this page, else the latest one."""
        request = getattr(self, "_request", None)
        private = can_see_private(getattr(request, "user", None))
        params = request.GET if request is not None else {}
        scope: dict[str, Any] = {}
        if obj.trigger == Trigger.EVENT or params.get("preview_event"):
            events = Event.objects.order_by("-id")
            if params.get("preview_event", "").isdigit():
                events = events.filter(pk=int(params["preview_event"]))
            event = events.first()
            if event is None:
                return format_html("<p>No event to preview with.</p>")
            from apps.profiles.selectors import profile_get_for_distinct_id

            profile = profile_get_for_distinct_id(event.distinct_id)
            scope = {"event": event_view(event), "profile": profile_view(profile, private=private)}
            what = f"event {event.pk} ({event.event_name})"
        else:
            profiles = Profile.objects.filter(merged_into__isnull=True).order_by("-updated_at")
            if params.get("preview_profile"):
                try:
                    profiles = profiles.filter(pk=uuid.UUID(params["preview_profile"]))
                except ValueError:
                    return format_html("<p>Not a profile id.</p>")
            profile = profiles.first()
            if profile is None:
                return format_html("<p>No profile to preview with.</p>")
            scope = {"profile": profile_view(profile, private=private)}
            if obj.trigger in (Trigger.SEGMENT_ENTERED, Trigger.SEGMENT_EXITED):
                scope["segment"] = {"key": obj.trigger_config.get("segment"), "name": ""}
            what = f"profile {profile.pk}"
        if not private:
            scope["profile"]["private_traits"] = {}
        try:
            payload = mapped(obj, obj.trigger, scope)
        except (MappingError, Exception) as exc:  # the preview shows a failing mapping
            return format_html("<p>The mapping fails: {}</p>", str(exc))
        note = "" if private else " Private traits are hidden (view_private_traits)."
        return format_html(
            "<p>For {}.{}</p><pre>{}</pre>",
            what,
            note,
            json.dumps(payload, indent=2, default=str),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        self._request = request
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Destination, form: Any, change: bool) -> None:
        values = {f: form.cleaned_data.get(f) for f in DestinationForm.Meta.fields}
        for field in ("trigger_config", "mapping", "settings"):
            values[field] = values[field] or {}
        values["required_consents"] = values["required_consents"] or []
        if change:
            saved = services.destination_update(destination=obj, **values)
        else:
            saved = services.destination_create(**values)
        obj.pk = saved.pk

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.replay_delivery")

    def has_test_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.test_destination")

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for destination in queryset:
            services.destination_pause(destination=destination)
        self.message_user(request, f"Paused {queryset.count()} destinations.")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for destination in queryset:
            services.destination_resume(destination=destination)
        self.message_user(request, f"Resumed {queryset.count()} destinations.")

    @admin.action(description="Replay all dead deliveries", permissions=["replay"])
    def replay_dead(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for destination in queryset:
            result = services.deliveries_replay(destination=destination)
            self.message_user(
                request,
                f"{destination.name}: {result.replayed} replayed, {result.superseded} "
                "superseded by a later profile state.",
            )

    @admin.action(description="Send a test message", permissions=["test"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for destination in queryset[:10]:
            try:
                result = services.destination_send_test(destination=destination)
            except DomainError as exc:
                self.message_user(request, f"{destination.name}: {exc.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if result["ok"] else messages.ERROR
            detail = result["status_code"] or result["error"]
            self.message_user(
                request,
                f"{destination.name}: {detail} ({result['credentials']} credentials)",
                level,
            )


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fk_name = "delivery"
    extra = 0
    can_delete = False
    fields = ["at", "ok", "status_code", "latency_ms", "error", "response_snippet"]
    readonly_fields = ["at", "ok", "status_code", "latency_ms", "error", "response_snippet"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "destination",
        "trigger",
        "status",
        "attempts",
        "last_status_code",
        "latency_ms",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "trigger", "destination"]
    search_fields = ["key", "profile_id"]
    inlines = [AttemptInline]
    actions = ["replay"]
    readonly_fields = [
        "destination",
        "key",
        "trigger",
        "profile_id",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_status_code",
        "last_error",
        "latency_ms",
        "created_at",
        "delivered_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("destination")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.replay_delivery")

    @admin.action(description="Replay the selected dead deliveries", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        by_destination: dict[int, list[int]] = {}
        for delivery in queryset.filter(status=DeliveryStatus.DEAD):
            by_destination.setdefault(delivery.destination_id, []).append(delivery.pk)
        replayed = superseded = 0
        for destination in Destination.objects.filter(pk__in=by_destination):
            result = services.deliveries_replay(
                destination=destination, ids=by_destination[destination.pk]
            )
            replayed += result.replayed
            superseded += result.superseded
        self.message_user(
            request, f"{replayed} replayed, {superseded} superseded by a later profile state."
        )
