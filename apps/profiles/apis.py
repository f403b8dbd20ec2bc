"""Management API for profiles and groups: lists, details, timelines, merge and unmerge."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.events import selectors as event_selectors
from apps.events.apis import EventSerializer, TimestampCursorPagination
from apps.profiles import hooks, selectors, services
from apps.profiles.filters import ProfileFilter
from apps.profiles.models import Group, MergeTrigger, Profile, ProfileMerge
from cdp.audit import AuditMixin
from cdp.errors import DomainError
from cdp.pagination import NewestFirstCursorPagination
from cdp.permissions import requires


def can_see_private(request: Request) -> bool:
    return bool(request.user and request.user.has_perm("profiles.view_private_traits"))


class ProfileSerializer(serializers.ModelSerializer):
    private_traits = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = [
            "id",
            "identified",
            "traits",
            "private_traits",
            "first_seen",
            "last_seen",
            "event_count",
            "session_count",
            "created_at",
            "updated_at",
        ]

    def get_private_traits(self, profile: Profile) -> dict[str, Any] | None:
        request = self.context.get("request")
        return profile.private_traits if request and can_see_private(request) else None


class MergeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProfileMerge
        fields = [
            "id",
            "survivor",
            "merged",
            "trigger",
            "triggered_by",
            "moved_distinct_ids",
            "created_at",
            "undone_at",
            "undone_by",
        ]


class ProfileDetailSerializer(ProfileSerializer):
    identities = serializers.SerializerMethodField()
    groups = serializers.SerializerMethodField()
    merges = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    segments = serializers.SerializerMethodField()

    class Meta(ProfileSerializer.Meta):
        fields = [
            *ProfileSerializer.Meta.fields,
            "identities",
            "groups",
            "segments",
            "merges",
            "history",
        ]

    def get_identities(self, profile: Profile) -> list[dict[str, str]]:
        return [
            {"distinct_id": i.distinct_id, "kind": i.kind, "created_at": i.created_at.isoformat()}
            for i in profile.identities.all()
        ]

    def get_groups(self, profile: Profile) -> list[dict[str, Any]]:
        return [
            {
                "group_key": m.group.group_type.key,
                "group_id": m.group.group_id,
                "properties": m.group.properties,
            }
            for m in profile.memberships.all()
        ]

    def get_segments(self, profile: Profile) -> list[dict[str, Any]]:
        """The segments the profile is in now, with when it entered each."""
        return hooks.profile_segments(profile)

    def get_merges(self, profile: Profile) -> list[dict[str, Any]]:
        merges = selectors.profile_merges(profile).order_by("-created_at")[:100]
        return MergeSerializer(merges, many=True).data  # type: ignore[return-value]

    def get_history(self, profile: Profile) -> list[dict[str, Any]]:
        return [
            {
                "action": h.action,
                "detail": h.detail,
                "actor": h.actor,
                "created_at": h.created_at.isoformat(),
            }
            for h in selectors.profile_history(profile)[:100]
        ]


class MergeRequestSerializer(serializers.Serializer):
    other_profile = serializers.UUIDField(help_text="The profile merged into this one.")


class UnmergeRequestSerializer(serializers.Serializer):
    merge = serializers.IntegerField(help_text="The id of the merge to undo.")


class LastSeenCursorPagination(NewestFirstCursorPagination):
    ordering = ("-updated_at",)


class ProfileViewSet(AuditMixin, viewsets.ReadOnlyModelViewSet):
    """People. A merged profile's id answers with the profile it was merged into."""

    permission_model = Profile
    filterset_class = ProfileFilter
    pagination_class = LastSeenCursorPagination

    def get_queryset(self):
        if self.action == "list":
            return selectors.profile_list().distinct()
        return selectors.profile_detail_queryset()

    def get_serializer_class(self):
        return ProfileSerializer if self.action == "list" else ProfileDetailSerializer

    def get_object(self) -> Profile:
        profile = selectors.profile_get(self.kwargs["pk"])
        if profile is None:
            raise DomainError("No such profile", code="not_found", status_code=404)
        return get_object_or_404(selectors.profile_detail_queryset(), pk=profile.pk)

    @requires("profiles.view_profile", "events.view_event")
    @action(
        detail=True,
        methods=["get"],
        pagination_class=TimestampCursorPagination,
    )
    def events(self, request: Request, pk: str | None = None) -> Response:
        """The timeline: events of every identity of the profile (merges included), newest
        first."""
        profile = self.get_object()
        events = event_selectors.event_timeline(
            distinct_ids=selectors.profile_distinct_ids(profile)
        )
        page = self.paginate_queryset(events)
        data = EventSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    # Merges rewrite who is who: reading profiles is not enough to do that.
    @requires("profiles.change_profile")
    @action(detail=True, methods=["post"], serializer_class=MergeRequestSerializer)
    def merge(self, request: Request, pk: str | None = None) -> Response:
        """Merge another profile into this one (explicit: allowed for two known users)."""
        profile = self.get_object()
        body = MergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        other = selectors.profile_get(body.validated_data["other_profile"])
        if other is None:
            raise DomainError(
                "No such profile", field="other_profile", code="not_found", status_code=404
            )
        if other.pk == profile.pk:
            raise DomainError("The two profiles are already one", field="other_profile")
        merge = services.profile_merge(
            survivor=profile,
            merged=other,
            trigger=MergeTrigger.API,
            triggered_by=request.user.get_username(),
            user=request.user,
        )
        return Response(MergeSerializer(merge).data, status=201)

    @requires("profiles.change_profile")
    @action(
        detail=True,
        methods=["post"],
        serializer_class=UnmergeRequestSerializer,
    )
    def unmerge(self, request: Request, pk: str | None = None) -> Response:
        """Undo one of the merges into this profile: its identities split back out."""
        profile = self.get_object()
        body = UnmergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        merge = ProfileMerge.objects.filter(
            pk=body.validated_data["merge"], survivor=profile
        ).first()
        if merge is None:
            raise DomainError(
                "No such merge into this profile", field="merge", code="not_found", status_code=404
            )
        restored = services.profile_unmerge(
            merge=merge, actor=request.user.get_username(), user=request.user
        )
        return Response(ProfileSerializer(restored, context={"request": request}).data)


class GroupSerializer(serializers.ModelSerializer):
    group_key = serializers.CharField(source="group_type.key")

    class Meta:
        model = Group
        fields = ["id", "group_key", "group_id", "properties", "created_at", "updated_at"]


class CreatedCursorPagination(NewestFirstCursorPagination):
    ordering = ("-created_at", "-id")


class GroupViewSet(viewsets.ReadOnlyModelViewSet):
    permission_model = Group
    serializer_class = GroupSerializer
    pagination_class = CreatedCursorPagination
    filterset_fields = {"group_type__key": ["exact"], "group_id": ["exact"]}

    def get_queryset(self):
        return selectors.group_list()

    @requires("profiles.view_group", "profiles.view_profile")
    @action(
        detail=True,
        methods=["get"],
        pagination_class=LastSeenCursorPagination,
    )
    def members(self, request: Request, pk: str | None = None) -> Response:
        group = self.get_object()
        page = self.paginate_queryset(selectors.group_members(group))
        data = ProfileSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)
