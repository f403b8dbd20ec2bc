"""App config for routing rules, workflow graphs, the action registry and the engine."""

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    verbose_name = "Workflows and routing rules"
