"""The browser tracker snippet: its content, its escaping, and its place on the admin page.
(tests/e2e/test_browser_tracker.py runs it in a real browser.)"""

from __future__ import annotations

import html
import json
import re

import pytest
from django.test import Client

from apps.sources import services
from apps.sources.snippet import tracker_snippet


def init_options(snippet: str) -> dict:
    match = re.search(r"cdp\.init\((\{.*\})\);", snippet)
    assert match, snippet
    return json.loads(match.group(1))


def test_snippet_loads_the_tracker_from_the_platform_with_the_write_key(source):
    snippet = tracker_snippet(source, "https://cdp.example.com/")

    assert snippet.startswith("<script>")
    assert snippet.endswith("</script>")
    assert 's.src="https://cdp.example.com/static/cdp.js"' in snippet
    assert init_options(snippet) == {
        "writeKey": source.write_key,
        "host": "https://cdp.example.com",
        "autoEvents": True,
    }
    assert "consent" not in snippet.split("cdp.init", 1)[1]


def test_snippet_asks_for_consent_when_the_source_requires_it(db):
    source = services.source_create(name="EU shop", requires_consent=True)

    snippet = tracker_snippet(source, "https://cdp.example.com")

    assert init_options(snippet)["requireConsent"] is True
    assert "cdp.consent(true)" in snippet


def test_snippet_values_cannot_close_the_script_element(source):
    snippet = tracker_snippet(source, "https://cdp.example.com/</script><script>alert(1)//")

    assert snippet.count("</script>") == 1
    assert "<script>alert" not in snippet


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_change_page_shows_the_snippet_next_to_the_curl_example(admin_client, source):
    page = admin_client.get(f"/admin/sources/eventsource/{source.pk}/change/")

    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "curl -X POST http://testserver/api/track" in text
    assert tracker_snippet(source, "http://testserver") in text
