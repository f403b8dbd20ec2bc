"""App config for consents: consent types, a profile's consents, data compliance rules and
privacy requests. It sits just above profiles: ingest reaches it only through the ingest gates
it registers here (consent collection and enforcement, then compliance rules), profiles through
the merge hook."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.checks import CheckMessage, Error


def check_gates_registered(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """System check: the consent gates are registered, so enforcement and compliance rules
    can't be silently off."""
    from apps.consents.gates import COLLECT_GATE, COMPLIANCE_GATE
    from apps.events.hooks import ingest_gate_names

    names = ingest_gate_names()
    return [
        Error(
            f"The ingest gate {name!r} is not registered.",
            hint="apps.consents registers it in ConsentsConfig.ready(): keep it installed.",
            obj="apps.consents",
            id="consents.E001",
        )
        for name in (COLLECT_GATE, COMPLIANCE_GATE)
        if name not in names
    ]


class ConsentsConfig(AppConfig):
    name = "apps.consents"
    verbose_name = "Consents and privacy"

    def ready(self) -> None:
        from apps.consents import gates, services, tasks  # noqa: F401  (tasks: registered)
        from apps.events.hooks import register_ingest_gate
        from apps.profiles import hooks as profile_hooks

        register_ingest_gate(
            gates.COLLECT_GATE, gates.collect_and_enforce, order=gates.COLLECT_ORDER
        )
        register_ingest_gate(
            gates.COMPLIANCE_GATE, gates.compliance_gate, order=gates.COMPLIANCE_ORDER
        )
        profile_hooks.register_profiles_merged(services.consents_profiles_merged)
        checks.register(check_gates_registered)
        _watch_rule_changes()

        from apps.consents.privacy.setup import privacy_ready

        privacy_ready()
        # A person's consents and their history are exported and erased like any person data.
        from apps.consents.person_data import HANDLER
        from apps.consents.privacy.hooks import register_person_data

        register_person_data(HANDLER)


def _watch_rule_changes() -> None:
    """Compiled compliance rules are kept per process; a saved or deleted rule or consent type
    (admin, API, shell) publishes a new version so that every process compiles them again."""
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from apps.consents.gates import compliance_rules_changed
    from apps.consents.models import ComplianceRule, ConsentType

    def changed(**kwargs: Any) -> None:
        compliance_rules_changed()

    # weak=False: `changed` is local to this function, so a weak reference (the default)
    # would let it be collected and the signals would call nothing.
    for model in (ComplianceRule, ConsentType):
        post_save.connect(
            changed, sender=model, weak=False, dispatch_uid=f"consents-rules-{model.__name__}"
        )
        post_delete.connect(
            changed, sender=model, weak=False, dispatch_uid=f"consents-rules-del-{model.__name__}"
        )
    m2m_changed.connect(
        changed,
        sender=ComplianceRule.consent_types.through,
        weak=False,
        dispatch_uid="consents-rules-m2m",
    )
