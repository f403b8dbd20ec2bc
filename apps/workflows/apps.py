"""App config for routing rules, workflow graphs, the action registry and the engine."""

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    verbose_name = "Workflows and routing rules"

    def ready(self) -> None:
        # Privacy requests export and erase a person's runs and traces through this.
        from apps.consents.privacy.hooks import register_person_data
        from apps.workflows.person_data import HANDLER

        register_person_data(HANDLER)
