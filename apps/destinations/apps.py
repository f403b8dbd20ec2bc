"""App config for destinations: encrypted resources (credentials) and the destinations that
deliver profiles and events to other systems through an outbox."""

from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "apps.destinations"
    verbose_name = "Destinations"

    def ready(self) -> None:
        from apps.destinations import services, tasks  # noqa: F401  (tasks: registered)
        from apps.destinations import workflow_actions as actions
        from apps.pipeline import hooks as pipeline_hooks
        from apps.profiles import hooks as profile_hooks
        from apps.segments import hooks as segment_hooks
        from apps.workflows import effects
        from apps.workflows.actions import register_extension
        from apps.workflows.resources import register_http_resources

        # Deliveries are written in the transaction of the change that causes them.
        pipeline_hooks.register_events_processed(services.destinations_events_processed)
        profile_hooks.register_profiles_changed(services.destinations_profiles_changed)
        segment_hooks.register_membership_changed(services.destinations_segment_changed)
        # The workflow engine: send_to_destination, and resources for http_request.
        register_extension(actions.SendToDestination)
        if actions.SEND_KIND not in effects.effect_kinds():
            effects.effect_register(actions.DestinationSendApplier)
        register_http_resources(actions.http_resource_target, actions.http_resource_names)
