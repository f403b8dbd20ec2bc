"""Writes on segments: definitions, memberships, real-time re-evaluation, the set-wise recompute and
memberships through merges (one module per concern, names re-exported)."""

from apps.segments.services.definitions import (
    RECOMPUTE_SEGMENT_TASK,
    UNSET,
    segment_create,
    segment_delete,
    segment_filter_parse,
    segment_recompute_later,
    segment_update,
    segments_in_dependency_order,
)
from apps.segments.services.membership import (
    ENTERED_EVENT,
    EXITED_EVENT,
    ImportColumn,
    MembersChange,
    segment_members_add,
    segment_members_import,
    segment_members_remove,
)
from apps.segments.services.merges import (
    segments_profiles_merged,
    segments_profiles_unmerged,
)
from apps.segments.services.realtime import (
    GROUP_REEVALUATE_CHUNK,
    GROUP_REEVALUATE_MAX,
    REEVALUATE_GROUP_MEMBERS_TASK,
    REEVALUATE_PROFILES_TASK,
    STAT_FIELDS,
    segments_group_changed_later,
    segments_process_events,
    segments_reevaluate,
    segments_reevaluate_group,
    segments_reevaluate_later,
)
from apps.segments.services.recompute import (
    RecomputeResult,
    segment_recompute,
    segments_recompute_all,
)

__all__ = [
    "ENTERED_EVENT",
    "EXITED_EVENT",
    "GROUP_REEVALUATE_CHUNK",
    "GROUP_REEVALUATE_MAX",
    "RECOMPUTE_SEGMENT_TASK",
    "REEVALUATE_GROUP_MEMBERS_TASK",
    "REEVALUATE_PROFILES_TASK",
    "STAT_FIELDS",
    "UNSET",
    "ImportColumn",
    "MembersChange",
    "RecomputeResult",
    "segment_create",
    "segment_delete",
    "segment_filter_parse",
    "segment_members_add",
    "segment_members_import",
    "segment_members_remove",
    "segment_recompute",
    "segment_recompute_later",
    "segment_update",
    "segments_group_changed_later",
    "segments_in_dependency_order",
    "segments_process_events",
    "segments_profiles_merged",
    "segments_profiles_unmerged",
    "segments_recompute_all",
    "segments_reevaluate",
    "segments_reevaluate_group",
    "segments_reevaluate_later",
]
