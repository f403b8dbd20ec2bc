"""Admin for profiles (read-mostly, with the timeline), merges, conflicts, identification
points and groups."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from apps.events import selectors as event_selectors
from apps.events.privacy import redact_private
from apps.profiles import selectors, services
from apps.profiles.models import (
    Group,
    GroupType,
    IdentificationPoint,
    Identity,
    MergeConflict,
    MergeTrigger,
    Profile,
    ProfileMerge,
)
from cdp.errors import DomainError

TIMELINE_LENGTH = 50


def _can_see_private(request: HttpRequest) -> bool:
    return request.user.has_perm("profiles.view_private_traits")


class IdentityInline(admin.TabularInline):
    model = Identity
    fields = ("distinct_id", "kind", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "identified",
        "event_count",
        "session_count",
        "first_seen",
        "last_seen",
    ]
    list_filter = ["identified", "last_seen"]
    search_fields = ["=identities__distinct_id", "private_traits__email", "=id"]
    inlines = [IdentityInline]
    actions = ["merge_profiles"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Profile]:
        return super().get_queryset(request).filter(merged_into__isnull=True)

    def get_list_display(self, request: HttpRequest) -> Any:
        if _can_see_private(request):
            return ["__str__", "email", *self.list_display[1:]]
        return list(self.list_display)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # Searching by email without the permission would tell who is a customer.
        if _can_see_private(request):
            return list(self.search_fields)
        return [f for f in self.search_fields if not f.startswith("private_traits")]

    @admin.display(description="Email")
    def email(self, profile: Profile) -> str:
        value = (
            profile.private_traits.get("email")
            if isinstance(profile.private_traits, dict)
            else None
        )
        return str(value) if value else "-"

    def _fields(self, request: HttpRequest) -> list[str]:
        private = _can_see_private(request)
        return [
            "id",
            "identified",
            "traits",
            *(["private_traits"] if private else []),
            "first_seen",
            "last_seen",
            "event_count",
            "session_count",
            "groups_list",
            "merge_history",
            "timeline" if private else "timeline_redacted",
        ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return self._fields(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._fields(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_merge_permission(self, request: HttpRequest) -> bool:
        # As the API's merge and unmerge: they rewrite who is who.
        return request.user.has_perm("profiles.change_profile")

    @admin.display(description="Groups")
    def groups_list(self, profile: Profile) -> str:
        return (
            ", ".join(str(m.group) for m in profile.memberships.select_related("group__group_type"))
            or "-"
        )

    @admin.display(description="Merges")
    def merge_history(self, profile: Profile) -> str:
        merges = selectors.profile_merges(profile).order_by("-created_at")[:20]
        if not merges:
            return "-"
        return format_html_join(
            "",
            "<div>{}: {} &rarr; {} ({}, {}){}</div>",
            (
                (
                    m.created_at.strftime("%Y-%m-%d %H:%M"),
                    m.merged_id,
                    m.survivor_id,
                    m.get_trigger_display(),
                    ", ".join(m.moved_distinct_ids[:5]),
                    " - undone" if m.undone_at else "",
                )
                for m in merges
            ),
        )

    @admin.display(description=f"Timeline (latest {TIMELINE_LENGTH} events)")
    def timeline(self, profile: Profile) -> str:
        return self._timeline(profile, show_private=True)

    @admin.display(description=f"Timeline (latest {TIMELINE_LENGTH} events)")
    def timeline_redacted(self, profile: Profile) -> str:
        """The timeline for users without the private-traits permission."""
        return self._timeline(profile, show_private=False)

    def _timeline(self, profile: Profile, *, show_private: bool) -> str:
        shown = (lambda properties: properties) if show_private else redact_private
        events = event_selectors.event_timeline(
            distinct_ids=selectors.profile_distinct_ids(profile)
        ).order_by("-timestamp")[:TIMELINE_LENGTH]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    e.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                    e.event_name,
                    e.distinct_id,
                    str(shown(e.properties))[:200],
                )
                for e in events
            ),
        )
        return (
            format_html(
                "<table><tr><th>When</th><th>Event</th><th>Distinct id</th><th>Properties</th>"
                "</tr>{}</table>",
                rows,
            )
            if events
            else "-"
        )

    @admin.action(
        description="Merge the selected profiles into the one with most events",
        permissions=["merge"],
    )
    def merge_profiles(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        profiles = sorted(queryset, key=lambda p: (-p.event_count, p.created_at))
        if len(profiles) < 2:
            self.message_user(request, "Select at least two profiles to merge.", messages.WARNING)
            return
        survivor = profiles[0]
        for other in profiles[1:]:
            services.profile_merge(
                survivor=survivor,
                merged=other,
                trigger=MergeTrigger.ADMIN,
                triggered_by=request.user.get_username(),
                user=request.user,
            )
        self.message_user(
            request, f"Merged {len(profiles) - 1} profile(s) into {survivor.pk}.", messages.SUCCESS
        )


@admin.register(ProfileMerge)
class ProfileMergeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "merged", "survivor", "trigger", "triggered_by", "undone_at"]
    list_filter = ["trigger", "created_at"]
    search_fields = ["=survivor__id", "=merged__id", "triggered_by"]
    readonly_fields = [
        "survivor",
        "merged",
        "trigger",
        "triggered_by",
        "moved_distinct_ids",
        "merged_snapshot",
        "created_at",
        "undone_at",
        "undone_by",
    ]
    actions = ["undo"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_merge_permission(self, request: HttpRequest) -> bool:
        # As the API's merge and unmerge: they rewrite who is who.
        return request.user.has_perm("profiles.change_profile")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The snapshot holds the merged profile's private traits.
        if _can_see_private(request):
            return list(self.readonly_fields)
        return [f for f in self.readonly_fields if f != "merged_snapshot"]

    @admin.action(
        description="Undo the selected merges (split the identities back out)",
        permissions=["merge"],
    )
    def undo(self, request: HttpRequest, queryset: QuerySet[ProfileMerge]) -> None:
        for merge in queryset.order_by("-created_at"):
            try:
                services.profile_unmerge(
                    merge=merge, actor=request.user.get_username(), user=request.user
                )
            except DomainError as exc:
                self.message_user(request, f"Merge {merge.pk}: {exc.message}", messages.ERROR)


@admin.register(MergeConflict)
class MergeConflictAdmin(admin.ModelAdmin):
    list_display = ["created_at", "profile", "other_profile", "trigger", "reason", "resolved_at"]
    list_filter = ["trigger", "resolved_at"]
    readonly_fields = [
        "profile",
        "other_profile",
        "trigger",
        "triggered_by",
        "reason",
        "created_at",
        "resolved_at",
    ]
    actions = ["merge_anyway"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_merge_permission(self, request: HttpRequest) -> bool:
        # As the API's merge and unmerge: they rewrite who is who.
        return request.user.has_perm("profiles.change_profile")

    @admin.action(description="Merge anyway (the first profile survives)", permissions=["merge"])
    def merge_anyway(self, request: HttpRequest, queryset: QuerySet[MergeConflict]) -> None:
        from django.utils import timezone

        for conflict in queryset.filter(resolved_at__isnull=True):
            services.profile_merge(
                survivor=conflict.profile,
                merged=conflict.other_profile,
                trigger=MergeTrigger.ADMIN,
                triggered_by=request.user.get_username(),
                user=request.user,
            )
            conflict.resolved_at = timezone.now()
            conflict.save(update_fields=["resolved_at"])


@admin.register(IdentificationPoint)
class IdentificationPointAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "source", "event_name", "field", "kind", "store_hashed"]
    list_filter = ["enabled", "kind", "source"]
    search_fields = ["name", "field", "event_name"]


@admin.register(GroupType)
class GroupTypeAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "created_at"]
    search_fields = ["key", "name"]


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["group_id", "group_type", "created_at", "updated_at"]
    list_filter = ["group_type"]
    search_fields = ["group_id"]
    readonly_fields = ["created_at", "updated_at"]
