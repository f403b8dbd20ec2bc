#!/usr/bin/env bash
# CI: schemathesis against the real server (gunicorn on PostgreSQL), authenticated as a superuser
# by a token header. Fails on any 5xx or any answer that breaks the published schema.
#   DATABASE_URL=postgres://... .ci/schemathesis.sh       (the database is migrated, then used)
# SCHEMATHESIS_MAX_EXAMPLES (default 10) bounds the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database}"
BIN=${BIN:-.venv/bin}
PORT=${SCHEMATHESIS_PORT:-$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export DEBUG=0 SECRET_KEY=${SECRET_KEY:-schemathesis-$(head -c 24 /dev/urandom | base64)}
export CDP_ENCRYPTION_KEYS=${CDP_ENCRYPTION_KEYS:-$($BIN/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}
export CDP_HASH_SECRET=${CDP_HASH_SECRET:-$(head -c 32 /dev/urandom | base64)}
export ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=0 LOG_LEVEL=WARNING
# Tasks run in-process: the run exercises the API, not the broker.
unset REDIS_URL

$BIN/python manage.py migrate --noinput >/dev/null
# A superuser's API token, and a source's write key for the tracking endpoint in the schema.
read -r TOKEN WRITE_KEY < <($BIN/python manage.py shell -c '
from django.contrib.auth import get_user_model
from apps.accounts import services as accounts
from apps.sources import services
from apps.sources.models import EventSource
User = get_user_model()
user = User.objects.filter(username="schemathesis").first() or User.objects.create_superuser(
    username="schemathesis", email="", password=None)
source = EventSource.objects.filter(name="schemathesis").first() or services.source_create(
    name="schemathesis")
print(accounts.api_token_create(user=user, name="schemathesis")[1], source.write_key)
' | tail -n 1)

$BIN/gunicorn cdp.wsgi -b "127.0.0.1:$PORT" -w 2 --threads 4 --timeout 60 \
    --error-logfile "${SCHEMATHESIS_LOG:-/tmp/schemathesis-gunicorn.log}" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    $BIN/python -c "import httpx; httpx.get('http://127.0.0.1:$PORT/healthz').raise_for_status()" \
        2>/dev/null && break
    sleep 0.2
done

$BIN/schemathesis run "http://127.0.0.1:$PORT/api/schema/" \
    --header "Authorization: Token $TOKEN" --header "X-Write-Key: $WRITE_KEY" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" \
    --workers 2 --request-timeout 30 --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color "$@"
