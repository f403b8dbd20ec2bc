"""A person with a history worth exporting or erasing (merged profiles, aliases, traits, a
group, a segment membership, a workflow run, a refused merge that names them), and a
bystander whose data must stay untouched."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import orjson
from django.apps import apps as django_apps

from apps.events.models import Event
from apps.profiles.models import Identity
from tests.factories import PRO, Sender, chain, node, profile_of, published, route, segment_make

PERSON_IDS = ("device-1", "device-2", "ann-42", "crm-981")
EMAIL = "ann.private@example.com"
BYSTANDER = "bob-7"


@dataclass
class History:
    profile_ids: list[str]
    events: int


def person_history(send: Sender) -> History:
    """Two anonymous devices merged into a known user, an alias, traits, a group, a segment
    and a workflow run; and a bystander (bob-7) with his own history."""
    segment_make("pros", PRO)
    route(published(chain(node("a", "set_trait", trait="welcomed", value=True))), "signed_up")
    send.batch([send.event("device-1", 0), send.event("device-1", 1, "viewed_pricing")])
    send.track("device-2", 5)
    before_merge = [str(profile_of("device-1").pk), str(profile_of("device-2").pk)]
    send.identify("ann-42", "device-1", minutes=10, private_traits={"email": EMAIL})
    send.identify("ann-42", "device-2", minutes=11, traits={"plan": "pro"})
    send.alias("ann-42", "crm-981", minutes=12)
    send.track("ann-42", 13, "signed_up", email=EMAIL)
    send.group("ann-42", "company", "acme")
    send.batch([send.event(BYSTANDER, 0), send.event(BYSTANDER, 2, "signed_up")])
    send.identify(BYSTANDER, minutes=3, traits={"plan": "pro"})
    # Bob logs in on Ann's device: refused (two known users), recorded on both sides.
    send.identify(BYSTANDER, "device-1", minutes=20)
    survivor = str(profile_of("ann-42").pk)
    ids = {survivor, *before_merge}
    return History(
        profile_ids=sorted(ids),
        events=Event.objects.filter(distinct_id__in=PERSON_IDS).count(),
    )


def zip_files(content: bytes) -> dict[str, list[dict[str, Any]]]:
    """The NDJSON files of an export archive, parsed (and the manifest, as one row)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            if name.endswith(".ndjson"):
                out[name.removesuffix(".ndjson")] = [
                    orjson.loads(line) for line in data.splitlines() if line
                ]
            else:
                out[name] = [orjson.loads(data)]
    return out


def rows_mentioning(needles: list[str]) -> dict[str, int]:
    """Table by table (every model of every installed app), the rows in which any needle
    appears in any column: what an erase must bring to zero."""
    found: dict[str, int] = {}
    for model in django_apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        columns = [f.attname for f in model._meta.concrete_fields]
        hits = 0
        for row in model.objects.values_list(*columns).iterator():
            text = " ".join(_text(v) for v in row)
            if any(needle in text for needle in needles):
                hits += 1
        if hits:
            found[model._meta.db_table] = hits
    return found


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def identity_count() -> int:
    return Identity.objects.filter(distinct_id__in=PERSON_IDS).count()
