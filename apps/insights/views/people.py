"""People: search profiles, and a profile's page (traits, identities, groups, segments, merge
history, and its journey grouped by session)."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from apps.consents import selectors as consent_selectors
from apps.insights import selectors
from apps.insights.templatetags.insights_tags import redact
from apps.insights.views.access import labelled, page, sees_private
from apps.insights.views.export import csv_response
from apps.profiles import selectors as profile_selectors
from apps.profiles.models import IdentityKind
from apps.segments import selectors as segment_selectors
from apps.segments.scoring import selectors as scoring_selectors

MAX_QUERY = 200
PRIVATE_KINDS = {IdentityKind.EMAIL, IdentityKind.PHONE}


@page("profiles.view_profile")
def people(request: HttpRequest) -> HttpResponseBase:
    query = request.GET.get("q", "")[:MAX_QUERY]
    private = sees_private(request)
    found = selectors.people_search(query=query, with_private=private)
    rows = labelled(
        found,
        private=private,
        distinct_ids=segment_selectors.primary_distinct_ids(p.pk for p in found),
    )
    if request.GET.get("format") == "csv":
        return _people_csv(rows, private=private)
    template = "insights/partials/people_rows.html" if request.htmx else "insights/people.html"  # type: ignore[attr-defined]
    return render(request, template, {"people": rows, "q": query, "private": private})


def _people_csv(rows: list, *, private: bool) -> StreamingHttpResponse:
    header = ["profile_id", "distinct_id", "first_seen", "last_seen", "events", "traits"]
    return csv_response(
        name="people",
        header=[*header, *(["email"] if private else [])],
        rows=(
            [
                p.pk,
                p.distinct_id,
                p.first_seen.isoformat() if p.first_seen else "",
                p.last_seen.isoformat() if p.last_seen else "",
                p.event_count,
                json.dumps(p.traits if private else redact(p.traits), sort_keys=True),
                *([(p.private_traits or {}).get("email", "")] if private else []),
            ]
            for p in rows
        ),
    )


@page("profiles.view_profile")
def profile(request: HttpRequest, profile_id: str) -> HttpResponseBase:
    found = profile_selectors.profile_get(profile_id)
    if found is None:
        raise Http404("No such profile")
    person = profile_selectors.profile_detail_queryset().get(pk=found.pk)
    private = sees_private(request)
    identities = list(person.identities.all())
    distinct_ids = [i.distinct_id for i in identities]
    for identity in identities:
        identity.hidden = identity.kind in PRIVATE_KINDS and not private  # type: ignore[attr-defined]
    event_name = request.GET.get("event", "")[:255]
    context = {
        "person": person,
        "label": labelled(
            [person],
            private=private,
            distinct_ids=segment_selectors.primary_distinct_ids([person.pk]),
        )[0].label,  # type: ignore[attr-defined]
        "private": private,
        "identities": identities,
        "memberships": list(person.memberships.all()),
        "segments": segment_selectors.profile_segments(person),
        "consents": (
            consent_selectors.profile_consents(person)
            if request.user.has_perm("consents.view_profileconsent")
            else []
        ),
        "scores": (
            scoring_selectors.profile_scores(person)
            if request.user.has_perm("segments.view_scoredefinition")
            else []
        ),
        "merges": list(
            profile_selectors.profile_merges(person).select_related("survivor", "merged")[:50]
        ),
        "sessions": selectors.profile_sessions(distinct_ids=distinct_ids, event_name=event_name),
        "event_names": selectors.profile_event_names(distinct_ids=distinct_ids),
        "event_name": event_name,
        "session_total": selectors.session_count(distinct_ids=distinct_ids),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "insights/partials/timeline.html", context)
    return render(request, "insights/profile.html", context)
