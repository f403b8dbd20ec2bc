"""App config for destinations: encrypted resources (credentials) and the destinations that
deliver profiles and events to other systems through an outbox."""

from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "apps.destinations"
    verbose_name = "Destinations"

    def ready(self) -> None:
        from apps.consents.privacy.hooks import register_person_data, register_profile_deleted
        from apps.destinations import person_data, services, tasks  # noqa: F401  (tasks)
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
        profile_hooks.register_profiles_merged(services.destinations_profiles_merged)
        profile_hooks.register_profiles_unmerged(services.destinations_profiles_unmerged)
        segment_hooks.register_membership_changed(services.destinations_segment_changed)
        # The workflow engine: send_to_destination, and resources for http_request.
        register_extension(actions.SendToDestination)
        if actions.SEND_KIND not in effects.effect_kinds():
            effects.effect_register(actions.DestinationSendApplier)
        register_http_resources(actions.http_resource_target, actions.http_resource_names)
        # Privacy requests: a person's deliveries are exported and erased, and erases are
        # forwarded to the destinations that support it.
        register_person_data(person_data.HANDLER)
        register_profile_deleted(person_data.destinations_person_deleted)
