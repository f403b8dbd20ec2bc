"""What the consents app's ready() does for privacy requests: the suppression ingest gate,
the person-data system check, the tasks and the admin pages."""

from __future__ import annotations

from django.core import checks


def privacy_ready() -> None:
    from apps.consents import privacy_admin  # noqa: F401  (registers the admin pages)
    from apps.consents.privacy import tasks  # noqa: F401  (registers the tasks)
    from apps.consents.privacy.hooks import check_person_data_registered
    from apps.consents.privacy.suppression import (
        GATE_NAME,
        GATE_ORDER,
        suppression_gate,
        suppression_operation_gate,
    )
    from apps.events.hooks import register_ingest_gate, register_operation_gate

    register_ingest_gate(GATE_NAME, suppression_gate, order=GATE_ORDER)
    register_operation_gate(GATE_NAME, suppression_operation_gate)
    checks.register(check_person_data_registered)
