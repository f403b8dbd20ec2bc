"""App config for the processing pipeline: the one place that calls the floors in turn."""

from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "apps.pipeline"
    verbose_name = "Processing pipeline"

    def ready(self) -> None:
        # The events app queues processing by task name: register the tasks in every process
        # (web and worker), so in-process (eager) tasks find them too.
        from apps.pipeline import tasks  # noqa: F401
