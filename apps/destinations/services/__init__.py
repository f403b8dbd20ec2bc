"""Writes on destinations and resources (one module per concern, names re-exported)."""

from apps.destinations.services.definitions import (
    destination_create,
    destination_delete,
    destination_update,
)
from apps.destinations.services.outbox import (
    DELIVER_TASK,
    deliveries_wake,
    destination_send_from_workflow,
    destinations_events_processed,
    destinations_profile_deleted,
    destinations_profiles_changed,
    destinations_segment_changed,
    profile_identities,
)
from apps.destinations.services.resources import (
    resource_create,
    resource_delete,
    resource_rotate_signing_secret,
    resource_test,
    resource_update,
)
from apps.destinations.services.sending import (
    ReplayResult,
    deliveries_claim,
    deliveries_dispatch_due,
    deliveries_purge,
    deliveries_record,
    deliveries_replay,
    destination_counts,
    destination_deliver,
    destination_pause,
    destination_resume,
    destination_send_test,
)

__all__ = [
    "DELIVER_TASK",
    "ReplayResult",
    "deliveries_claim",
    "deliveries_dispatch_due",
    "deliveries_purge",
    "deliveries_record",
    "deliveries_replay",
    "deliveries_wake",
    "destination_counts",
    "destination_create",
    "destination_delete",
    "destination_deliver",
    "destination_pause",
    "destination_resume",
    "destination_send_from_workflow",
    "destination_send_test",
    "destination_update",
    "destinations_events_processed",
    "destinations_profile_deleted",
    "destinations_profiles_changed",
    "destinations_segment_changed",
    "profile_identities",
    "resource_create",
    "resource_delete",
    "resource_rotate_signing_secret",
    "resource_test",
    "resource_update",
]
