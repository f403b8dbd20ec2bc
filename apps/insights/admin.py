"""Saved insights and dashboards in the Django admin (the pages at / are where they are made)."""

from django.contrib import admin

from apps.insights.models import Dashboard, DashboardItem, SavedInsight


@admin.register(SavedInsight)
class SavedInsightAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "owner", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    readonly_fields = ["share_key", "created_at", "updated_at"]
    list_select_related = ["owner"]


class DashboardItemInline(admin.TabularInline):
    model = DashboardItem
    extra = 0
    autocomplete_fields = ["insight"]


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["share_key", "created_at", "updated_at"]
    inlines = [DashboardItemInline]
    list_select_related = ["owner"]
