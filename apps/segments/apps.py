"""App config for the filter language, segments and their membership."""

from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "apps.segments"
    verbose_name = "Segments"

    def ready(self) -> None:
        # `in_segment` leaves of the filter language read the stored memberships.
        from apps.segments import selectors
        from apps.segments.filtering import set_segment_membership_resolver

        set_segment_membership_resolver(
            selectors.segment_member_ids_sql, selectors.segment_has_member
        )
