"""gunicorn settings for production: `gunicorn cdp.wsgi -c cdp/gunicorn.conf.py`.

Every value can be changed from the environment (GUNICORN_*), or on the command line, which
wins over this file (e.g. --bind 0.0.0.0:8000).
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")

# Tracking requests are short and mostly CPU (JSON, validation) plus one database commit that
# the requests of a process waiting at the same time share (apps/events/groupcommit.py): one
# process per core and one more keep the cores busy, and six threads each let a process's
# requests wait on PostgreSQL together. Measured on 2 cores against 5 processes of 4 threads
# (docs/benchmarks.md): one-event requests about 8% faster, batches as fast or faster, /healthz
# the same, and fewer processes to hold in memory.
# gthread, unlike sync workers, keeps client connections alive between requests (SDKs and
# browsers send many small requests), without holding a thread while a connection is idle.
workers = _int("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = _int("GUNICORN_THREADS", 6)

# A request slower than this is stuck (the ingest transaction itself gives up after
# CDP_INGEST_DB_TIMEOUT_MS): the worker is killed and replaced.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycle workers now and then, so a slow leak in any dependency can't grow without bound.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 2000)

# Request sizes: tracking bodies are limited by the app (CDP_MAX_REQUEST_BYTES); these bound
# the request line and headers.
limit_request_line = 8190
limit_request_fields = 100

# The access log costs a write per request on the hot path: off unless asked for
# ("-" is stdout). Errors always go to stderr.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Proxies whose X-Forwarded-* headers gunicorn trusts (comma-separated IPs, or *).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def worker_exit(server: object, worker: object) -> None:
    """Publish the processing tasks this worker's dispatcher still holds (CDP_DISPATCH_MODE
    "background") before it exits; what a killed worker can't publish, the redispatch does."""
    try:
        from apps.events.dispatch import dispatcher_stop
    except Exception:  # the app never loaded in this worker: nothing to flush
        return
    dispatcher_stop()
