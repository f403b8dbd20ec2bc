"""The HTML snippet that installs the browser tracker (static/cdp.js) for a source."""

from __future__ import annotations

import json

from django.templatetags.static import static

from apps.sources.models import EventSource

# Calls a page may make before cdp.js has loaded: the stub records them, the file replays them.
QUEUED_METHODS = ("init", "track", "page", "identify", "group", "reset", "consent", "flush")

_LOADER = (
    "!function(w,d){{var c=w.cdp=w.cdp||[];if(c.__loaded||c.init)return;"
    '"{methods}".split(" ").forEach(function(m){{c[m]=function(){{'
    "c.push([m].concat([].slice.call(arguments)))}}}});"
    'var s=d.createElement("script");s.async=true;s.src={src};'
    "d.head.appendChild(s)}}(window,document);"
)


def _js(value: object) -> str:
    """A JavaScript literal that is also safe inside an inline <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def tracker_script_url(base_url: str) -> str:
    url = static("cdp.js")
    return url if "://" in url or url.startswith("//") else base_url.rstrip("/") + url


def tracker_snippet(source: EventSource, base_url: str) -> str:
    """The <script> to paste into every page of a site: loads cdp.js from this platform,
    initialises it with the source's write key, and asks for consent when the source needs it."""
    base_url = base_url.rstrip("/")
    options: dict[str, object] = {
        "writeKey": source.write_key,
        "host": base_url,
        "autoEvents": True,
    }
    lines = [
        "<script>",
        _LOADER.format(methods=" ".join(QUEUED_METHODS), src=_js(tracker_script_url(base_url))),
    ]
    if source.requires_consent:
        options["requireConsent"] = True
        lines.append(
            "// Nothing is sent until the visitor consents: call cdp.consent(true) from your "
            "consent banner (cdp.consent(false) if they refuse)."
        )
    lines.append(f"cdp.init({_js(options)});")
    lines.append("</script>")
    return "\n".join(lines)
