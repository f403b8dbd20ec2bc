"""Admin for segments: the filter editor (JSON and text), member count, a preview, the CSV
upload of static members, the recompute action, and the read-only membership history."""

from __future__ import annotations

import csv
import io
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.segments import selectors, services
from apps.segments.apis import RESERVED_KEYS
from apps.segments.filtering import filter_references_private, to_text
from apps.segments.models import Segment, SegmentKind, SegmentMembership
from cdp.errors import DomainError
from cdp.privacy import VIEW_PRIVATE_TRAITS, can_see_private

PRIVATE_FILTER_REFUSED = f"A filter on private traits needs the permission {VIEW_PRIVATE_TRAITS}"


def refuse_private_filter(form: forms.BaseForm, tree: Any, user: Any) -> Any:
    """The tree, or None with an error on the form when it reads private traits and the user
    may not see them (a count per guess would tell them the values)."""
    if tree is not None and filter_references_private(tree) and not can_see_private(user):
        form.add_error("filter", PRIVATE_FILTER_REFUSED)
        return None
    return tree


MEMBERS_SHOWN = 50
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UNKNOWN_SHOWN = 20
# A first row holding one of these is a header, not a member.
HEADER_NAMES = frozenset(
    {"distinct_id", "distinct_ids", "distinct id", "id", "user_id", "userid", "email", "emails"}
)


FILTER_FIELD = forms.JSONField(
    required=False,
    widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "style": "font-family:monospace"}),
    help_text='The filter as a JSON tree, e.g. {"property": "traits.plan", "operator": "is", '
    '"value": "pro"}.',
)
FILTER_TEXT_FIELD = forms.CharField(
    required=False,
    label="Filter (text form)",
    widget=forms.Textarea(attrs={"rows": 3, "cols": 90, "style": "font-family:monospace"}),
    help_text='The same filter as text: traits.plan is "pro" and event_count greater_than 5. '
    "When you change it, it replaces the JSON.",
)


def filter_from_form(form: forms.BaseForm, *, key: str | None) -> dict[str, Any] | None:
    """The validated tree from whichever input was edited (the text wins when it changed);
    an error goes under that input, naming the leaf."""
    data = form.cleaned_data
    text = (data.get("filter_text") or "").strip()
    text_given = bool(text) and text != (form.initial.get("filter_text") or "").strip()
    try:
        return services.segment_filter_parse(
            filter=None if text_given else data.get("filter"),
            filter_text=text if text_given else None,
            key=key,
        )
    except DomainError as exc:
        form.add_error("filter_text" if text_given else "filter", exc.message)
        return None


class SegmentAdminForm(forms.ModelForm):
    filter = FILTER_FIELD
    filter_text = FILTER_TEXT_FIELD

    class Meta:
        model = Segment
        fields = ["key", "name", "description", "kind", "filter"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["key"].disabled = True  # events and other filters name it
            if self.instance.filter:
                self.initial["filter_text"] = to_text(self.instance.filter)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("key") in RESERVED_KEYS:
            self.add_error("key", "This key is reserved")
        if self.errors:
            return data
        if data.get("kind") == SegmentKind.DYNAMIC:
            data["filter"] = refuse_private_filter(
                self, filter_from_form(self, key=data.get("key")), getattr(self, "user", None)
            )
        else:
            data["filter"] = None  # a static segment lists its members
        return data


class PreviewForm(forms.Form):
    filter = FILTER_FIELD
    filter_text = FILTER_TEXT_FIELD


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text="A CSV file with one column of distinct ids or emails; a header row is optional."
    )
    column = forms.ChoiceField(choices=services.ImportColumn.CHOICES, initial="auto")
    action = forms.ChoiceField(
        choices=(("add", "Add them to the segment"), ("remove", "Remove them from the segment")),
        initial="add",
    )

    def clean_file(self) -> list[tuple[int, str]]:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
            )
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text") from None
        try:
            rows = [
                (number, row[0].strip())
                for number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
                if row and row[0].strip()
            ]
        except csv.Error as exc:
            raise forms.ValidationError(f"Not a CSV file: {exc}") from None
        if rows and rows[0][1].lower() in HEADER_NAMES:
            rows = rows[1:]
        if not rows:
            raise forms.ValidationError("The file has no rows")
        return rows


class _LatestMembersFormSet(BaseInlineFormSet):
    """The segment's latest current members: limited after the formset has narrowed the rows
    to this segment, so every segment shows its own latest members."""

    def get_queryset(self) -> QuerySet[SegmentMembership]:
        rows = super().get_queryset()
        latest = list(rows.order_by("-id").values_list("id", flat=True)[:MEMBERS_SHOWN])
        return rows.filter(pk__in=latest).order_by("-id")


class MembershipInline(admin.TabularInline):
    """The latest current members (the full list is in Segment memberships)."""

    model = SegmentMembership
    formset = _LatestMembersFormSet
    fields = ("profile", "entered_at", "merge")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = f"Current members (latest {MEMBERS_SHOWN})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SegmentMembership]:
        return (
            super().get_queryset(request).filter(exited_at__isnull=True).select_related("profile")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ["key", "name", "kind", "member_count", "last_computed_at", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["key", "name"]
    readonly_fields = ["member_count", "last_computed_at", "preview", "members_link"]
    inlines = [MembershipInline]
    actions = ["recompute"]
    change_form_template = "admin/segments/segment/change_form.html"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]  # a class made for this request
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        fields = ["key", "name", "description", "kind", "filter", "filter_text"]
        if obj is None:
            return fields
        return [*fields, "member_count", "last_computed_at", "members_link", "preview"]

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            # `obj` already holds the posted values; the service compares with the stored row.
            services.segment_update(
                segment=Segment.objects.get(pk=obj.pk),
                name=data["name"],
                description=data["description"],
                kind=data["kind"],
                filter=data["filter"],
            )
            obj.refresh_from_db()
        else:
            created = services.segment_create(
                key=data["key"],
                name=data["name"],
                description=data["description"],
                kind=data["kind"],
                filter=data["filter"],
            )
            obj.pk = created.pk
            obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Segment) -> None:
        try:
            services.segment_delete(segment=obj)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        for segment in queryset:
            self.delete_model(request, segment)

    @admin.display(description="Members")
    def members_link(self, segment: Segment) -> str:
        url = reverse("admin:segments_segmentmembership_changelist")
        return format_html(
            '<a href="{}?segment__id__exact={}&amp;current=yes">{} current members</a> '
            '&middot; <a href="{}?segment__id__exact={}">history</a>',
            url,
            segment.pk,
            segment.member_count,
            url,
            segment.pk,
        )

    @admin.display(description="Preview (now)")
    def preview(self, segment: Segment) -> str:
        if segment.kind != SegmentKind.DYNAMIC or not segment.filter:
            return "-"
        try:
            result = selectors.segment_preview(segment.filter)
        except DomainError as exc:
            return format_html('<span class="errornote">{}</span>', exc.message)
        return _preview_html(result)

    @admin.action(description="Recompute the selected dynamic segments now", permissions=["change"])
    def recompute(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        dynamic = queryset.filter(kind=SegmentKind.DYNAMIC, filter__isnull=False)
        for segment in services.segments_in_dependency_order(dynamic):
            try:
                result = services.segment_recompute(segment=segment)
            except DomainError as exc:
                self.message_user(request, f"{segment.key}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{result.key}: {result.members} members "
                f"({result.entered} entered, {result.exited} exited).",
                messages.SUCCESS,
            )
        skipped = queryset.count() - dynamic.count()
        if skipped:
            self.message_user(
                request, f"{skipped} static segment(s) skipped: nothing to compute.", messages.INFO
            )

    # --- extra pages: preview a filter, upload members ------------------------------------------

    def get_urls(self) -> list[Any]:
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="segments_segment_preview",
            ),
            path(
                "<int:object_id>/upload/",
                self.admin_site.admin_view(self.upload_view),
                name="segments_segment_upload",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """Try a filter: the count and a sample of matching profiles, nothing saved."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        result_html = None
        if request.method == "POST":
            form = PreviewForm(request.POST)
            if form.is_valid():
                tree = refuse_private_filter(form, filter_from_form(form, key=None), request.user)
                if tree is not None:
                    result_html = _preview_html(selectors.segment_preview(tree))
        else:
            initial = {}
            segment = Segment.objects.filter(key=request.GET.get("segment", "")).first()
            if segment is not None and segment.filter:
                initial = {"filter": segment.filter}
            form = PreviewForm(initial=initial)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Preview a filter",
            "form": form,
            "result": result_html,
        }
        return TemplateResponse(request, "admin/segments/segment/preview.html", context)

    def upload_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Add (or remove) the members of a static segment from a CSV column."""
        segment = get_object_or_404(Segment, pk=object_id)
        if not self.has_change_permission(request, segment):
            raise PermissionDenied
        change_url = reverse("admin:segments_segment_change", args=[segment.pk])
        if segment.kind != SegmentKind.STATIC:
            self.message_user(
                request, "Only static segments take uploaded members.", messages.ERROR
            )
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                rows: list[tuple[int, str]] = form.cleaned_data["file"]
                result = services.segment_members_import(
                    segment=segment,
                    values=[value for _, value in rows],
                    column=form.cleaned_data["column"],
                    remove=form.cleaned_data["action"] == "remove",
                )
                self._report_upload(request, form.cleaned_data["action"], rows, result)
                return HttpResponseRedirect(change_url)
        else:
            form = UploadForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": segment,
            "title": f"Upload members of {segment}",
            "form": form,
        }
        return TemplateResponse(request, "admin/segments/segment/upload.html", context)

    def _report_upload(
        self,
        request: HttpRequest,
        action: str,
        rows: list[tuple[int, str]],
        result: services.MembersChange,
    ) -> None:
        verb = "added to" if action == "add" else "removed from"
        self.message_user(
            request,
            f"{len(rows)} row(s) read; {result.changed} profile(s) {verb} the segment.",
            messages.SUCCESS,
        )
        if result.unknown:
            unknown = set(result.unknown)
            missed = [
                (number, value)
                for number, value in rows
                if value in unknown or value.lower() in unknown
            ]
            shown = ", ".join(f"row {n}: {v}" for n, v in missed[:UNKNOWN_SHOWN])
            more = f" and {len(missed) - UNKNOWN_SHOWN} more" if len(missed) > UNKNOWN_SHOWN else ""
            self.message_user(
                request,
                f"{len(missed)} row(s) matched no profile: {shown}{more}.",
                messages.WARNING,
            )


def _preview_html(result: selectors.Preview) -> str:
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>',
        (
            (
                reverse("admin:profiles_profile_change", args=[p.pk]),
                p.pk,
                p.event_count,
                p.last_seen.strftime("%Y-%m-%d %H:%M") if p.last_seen else "-",
                str(p.traits)[:200],
            )
            for p in result.sample
        ),
    )
    return format_html(
        "<p><strong>{}</strong> profile(s) match now.</p>{}",
        result.count,
        format_html(
            "<table><tr><th>Profile</th><th>Events</th><th>Last seen</th><th>Traits</th></tr>"
            "{}</table>",
            rows,
        )
        if result.sample
        else "",
    )


class CurrentFilter(admin.SimpleListFilter):
    title = "current"
    parameter_name = "current"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Current members"), ("no", "Left")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[SegmentMembership]
    ) -> QuerySet[SegmentMembership]:
        if self.value() == "yes":
            return queryset.filter(exited_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(exited_at__isnull=False)
        return queryset


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    """Who was in which segment, and when (read-only: memberships change through segments)."""

    list_display = ["segment", "profile", "entered_at", "exited_at", "merge"]
    list_filter = [CurrentFilter, "segment"]
    list_select_related = ["segment", "profile"]
    search_fields = ["=profile__id", "=profile__identities__distinct_id"]
    readonly_fields = ["segment", "profile", "entered_at", "exited_at", "merge"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Predictive scores: their admin lives with them (apps/segments/scoring/admin.py).
from apps.segments.scoring import admin as scoring_admin  # noqa: E402, F401
