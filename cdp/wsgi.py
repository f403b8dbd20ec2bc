"""WSGI entry point (gunicorn cdp.wsgi, runserver): tracking requests are served before
Django's handler (cdp/fastpath.py), every other one by it."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

from django.core.wsgi import get_wsgi_application

from cdp.fastpath import TrackingWSGIApplication

application = TrackingWSGIApplication(get_wsgi_application())
