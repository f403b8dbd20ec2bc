"""App config for routing rules, workflow graphs, the action registry and the engine."""

from django.apps import AppConfig
from django.core import checks


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    verbose_name = "Workflows and routing rules"

    def ready(self) -> None:
        from apps.consents.privacy.hooks import register_person_data
        from apps.workflows.person_data import HANDLER
        from apps.workflows.resources import check_resources_registered

        # Privacy requests export and erase a person's runs and traces through this.
        register_person_data(HANDLER)
        # The http_request action's resources come from an app above (destinations).
        checks.register(check_resources_registered)
