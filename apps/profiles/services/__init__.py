"""Writes on profiles: identity resolution, identify, alias, merges and unmerges, people operations,
groups, and the profile step of event processing (one module per concern, names re-exported)."""

from apps.profiles.services.groups import (
    group_get_or_create,
    group_membership_set,
    group_properties_update,
)
from apps.profiles.services.identity import (
    identities_resolve,
    identity_lock_names,
    profile_alias,
    profile_identify,
    profile_identify_by,
)
from apps.profiles.services.merges import (
    profile_merge,
    profile_recount,
    profile_unmerge,
)
from apps.profiles.services.people import (
    PeopleResult,
    people_apply,
    people_apply_many,
)
from apps.profiles.services.processing import (
    ALIAS_EVENT,
    GROUP_EVENT,
    IDENTIFY_EVENT,
    IDENTITY_EVENT_HANDLERS,
    IDENTITY_EVENTS,
    SET_EVENT,
    profile_lock_names,
    profiles_process_events,
)

__all__ = [
    "ALIAS_EVENT",
    "GROUP_EVENT",
    "IDENTIFY_EVENT",
    "IDENTITY_EVENTS",
    "IDENTITY_EVENT_HANDLERS",
    "SET_EVENT",
    "PeopleResult",
    "group_get_or_create",
    "group_membership_set",
    "group_properties_update",
    "identities_resolve",
    "identity_lock_names",
    "people_apply",
    "people_apply_many",
    "profile_alias",
    "profile_identify",
    "profile_identify_by",
    "profile_lock_names",
    "profile_merge",
    "profile_recount",
    "profile_unmerge",
    "profiles_process_events",
]
