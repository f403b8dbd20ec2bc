"""Admin for routing rules (saved through the rule services)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.workflows import services
from apps.workflows.admin.forms import RuleAdminForm
from apps.workflows.models import Rule


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = [
        "name",
        "event",
        "source_shown",
        "workflow",
        "enabled",
        "priority",
        "condition_shown",
    ]
    list_filter = ["enabled", "workflow", "source"]
    list_select_related = ["workflow", "source"]
    search_fields = ["name", "event_name"]
    actions = ["enable", "disable"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]  # a class made for this request
        return form

    @admin.display(description="Event", ordering="event_name")
    def event(self, rule: Rule) -> str:
        return rule.event_name or "any"

    @admin.display(description="Source", ordering="source__name")
    def source_shown(self, rule: Rule) -> str:
        return str(rule.source) if rule.source else "any"

    @admin.display(description="Condition")
    def condition_shown(self, rule: Rule) -> str:
        return json.dumps(rule.condition)[:120] if rule.condition else "-"

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "workflow": data["workflow"],
            "event_name": data["event_name"],
            "source": data["source"],
            "condition": data["condition"],
            "enabled": data["enabled"],
            "priority": data["priority"],
        }
        if change:
            rule = services.rule_update(rule=Rule.objects.get(pk=obj.pk), **fields)
        else:
            rule = services.rule_create(**fields)
        obj.pk = rule.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        services.rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_delete(rule=rule)

    @admin.action(description="Enable the selected rules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_update(rule=rule, enabled=True)

    @admin.action(description="Disable the selected rules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_update(rule=rule, enabled=False)
