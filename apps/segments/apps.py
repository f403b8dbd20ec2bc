"""App config for the filter language, segments and their membership."""

from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "apps.segments"
    verbose_name = "Segments"

    def ready(self) -> None:
        from apps.profiles import hooks as profile_hooks
        from apps.segments import selectors, services, tasks  # noqa: F401  (tasks: registered)
        from apps.segments.filtering import set_segment_membership_resolver
        from apps.segments.scoring import tasks as scoring_tasks  # noqa: F401

        # `in_segment` leaves of the filter language read the stored memberships.
        set_segment_membership_resolver(
            selectors.segment_member_ids_sql, selectors.segment_has_member
        )
        # Memberships follow merges, and change when profiles or groups change.
        profile_hooks.register_profiles_merged(services.segments_profiles_merged)
        profile_hooks.register_profiles_unmerged(services.segments_profiles_unmerged)
        profile_hooks.register_profiles_changed(services.segments_reevaluate_later)
        profile_hooks.register_group_changed(services.segments_group_changed_later)
        profile_hooks.register_profile_segments(selectors.profile_segments)
        # Privacy requests export and erase a person's memberships through this.
        from apps.consents.privacy.hooks import register_person_data
        from apps.segments.person_data import HANDLER

        register_person_data(HANDLER)
