"""The CDP Django project: settings, URLs and the Celery app."""

from cdp.celery import app as celery_app

__all__ = ["celery_app"]
