"""Who may see what: each page names the permission it needs; private traits need theirs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from apps.profiles.models import Profile

PRIVATE_TRAITS_PERMISSION = "profiles.view_private_traits"

View = Callable[..., HttpResponseBase]


def page(*permissions: str) -> Callable[[View], View]:
    """Login first (a redirect to the login page), then every named permission (403)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.has_perms(permissions):
                raise PermissionDenied(f"Needs the permission {', '.join(permissions)}")
            return view(request, *args, **kwargs)

        return login_required(checked)

    return decorate


def require(request: HttpRequest, permission: str) -> None:
    """For a page whose actions need more than reading it (saving, editing)."""
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Needs the permission {permission}")


def sees_private(request: HttpRequest) -> bool:
    return request.user.has_perm(PRIVATE_TRAITS_PERMISSION)


def profile_label(profile: Profile, *, private: bool, distinct_id: str | None = None) -> str:
    """What to call a person on a page: a name trait, an email only for users allowed to see
    private traits, else their distinct id or profile id."""
    traits = profile.traits if isinstance(profile.traits, dict) else {}
    for key in ("name", "username"):
        if isinstance(traits.get(key), str) and traits[key]:
            return str(traits[key])
    if private and isinstance(profile.private_traits, dict):
        for key in ("name", "email"):
            value = profile.private_traits.get(key)
            if isinstance(value, str) and value:
                return value
    return distinct_id or str(profile.pk)


def labelled(
    profiles: Iterable[Profile], *, private: bool, distinct_ids: dict[uuid.UUID, str]
) -> list[Profile]:
    """The profiles, each with `.label` and `.distinct_id` set for the templates."""
    out = []
    for profile in profiles:
        profile.distinct_id = distinct_ids.get(profile.pk, "")  # type: ignore[attr-defined]
        profile.label = profile_label(  # type: ignore[attr-defined]
            profile, private=private, distinct_id=distinct_ids.get(profile.pk)
        )
        out.append(profile)
    return out


def owner(request: HttpRequest) -> User | None:
    """The logged-in user, to record as the owner of what they save."""
    user = request.user
    return user if isinstance(user, User) else None
