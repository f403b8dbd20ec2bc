"""App config for insights: the query runners and the marketer's dashboard pages."""

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "apps.insights"
    verbose_name = "Insights"
