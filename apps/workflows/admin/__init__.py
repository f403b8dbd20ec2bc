"""Admin for routing rules, workflows, runs with their node traces, and the action registry:
each model's admin in its own module, registered when this package is imported."""

from apps.workflows.admin import rules, runs, workflows

__all__ = ["rules", "runs", "workflows"]
