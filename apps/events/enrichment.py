"""Enrichment from an event's context: device from the user agent, campaign, referrer, page."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ua_parser import parse as ua_parse

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "macOS",
        "Linux",
        "Ubuntu",
        "Fedora",
        "Debian",
        "Chrome OS",
        "ChromeOS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)
_TABLET_HINTS = ("ipad", "tablet", "kindle", "silk", "playbook", "nexus 7", "nexus 9", "sm-t")
UTM_FIELDS = ("source", "medium", "campaign", "term", "content")


@dataclass(frozen=True, slots=True)
class Device:
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""  # desktop, mobile, tablet, bot
    device_brand: str = ""
    device_model: str = ""


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


@lru_cache(maxsize=4096)
def device_from_user_agent(user_agent: str) -> Device:
    """Browser, OS and device of a user-agent string (ua-parser; results cached per string)."""
    if not user_agent:
        return Device()
    result = ua_parse(user_agent[:1000])
    ua, os_, device = result.user_agent, result.os, result.device
    browser = ua.family if ua and ua.family != "Other" else ""
    os_name = os_.family if os_ and os_.family != "Other" else ""
    family = device.family if device else "Other"
    lowered = user_agent.lower()
    if family == "Spider" or "bot" in lowered or "crawler" in lowered or "spider" in lowered:
        device_type = "bot"
    elif any(hint in lowered for hint in _TABLET_HINTS) or (
        "android" in lowered and "mobile" not in lowered
    ):
        device_type = "tablet"
    elif (
        "mobi" in lowered
        or os_name in ("iOS", "Android")
        or (family not in ("Other", "Mac", "") and os_name not in _DESKTOP_OS)
    ):
        device_type = "mobile"
    elif os_name in _DESKTOP_OS:
        device_type = "desktop"
    else:
        device_type = ""
    return Device(
        browser=browser,
        browser_version=_version(ua.major, ua.minor) if browser and ua else "",
        os=os_name,
        os_version=_version(os_.major, os_.minor) if os_name and os_ else "",
        device_type=device_type,
        device_brand=(device.brand or "") if device else "",
        device_model=(device.model or "") if device else "",
    )


def _text(value: Any, limit: int = 2000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def page_url(context: dict[str, Any]) -> str:
    page = context.get("page")
    if isinstance(page, dict):
        return _text(page.get("url"))
    return _text(page) if isinstance(page, str) else ""


def referrer(context: dict[str, Any]) -> str:
    page = context.get("page")
    if isinstance(page, dict) and isinstance(page.get("referrer"), str):
        return _text(page["referrer"])
    ref = context.get("referrer")
    if isinstance(ref, dict):
        return _text(ref.get("url"))
    return _text(ref)


def referring_domain(url: str) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "")[:255]
    except ValueError:
        return ""


def utm(context: dict[str, Any]) -> dict[str, str]:
    """utm_* values: context.campaign first (name or campaign), else the page URL's query."""
    campaign = context.get("campaign")
    found: dict[str, str] = {}
    if isinstance(campaign, dict):
        for name in UTM_FIELDS:
            value = campaign.get(name)
            if name == "campaign" and value is None:
                value = campaign.get("name")
            if isinstance(value, str) and value:
                found[name] = value[:255]
    if found:
        return found
    url = page_url(context)
    if "utm_" not in url:
        return found
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return found
    for name in UTM_FIELDS:
        values = query.get(f"utm_{name}")
        if values and values[0]:
            found[name] = values[0][:255]
    return found


def user_agent(context: dict[str, Any]) -> str:
    return _text(context.get("user_agent") or context.get("userAgent"), 1000)


def context_timezone(context: dict[str, Any]) -> str:
    return _text(context.get("timezone"), 64)


def context_locale(context: dict[str, Any]) -> str:
    return _text(context.get("locale"), 35)
