"""HTML views of events: the create form, joining by code, the phone, the big screen and the console.

Thin doors over `polls.events`. Each live page renders its screen's region as the broadcaster does
(`partials/event_region.html`), and keeps it live over `/ws/events/<code>/…` with the htmx ws
extension; without JavaScript every page works by plain forms and reloads.
"""

import io

import segno
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from polls import events, join_codes, services, voters
from polls.models import Event, Poll
from polls.ratelimit import RateLimited
from web.forms import EventControlForm, EventCreateForm, VoteForm
from web.views import picked_choice_ids, vote_rejection_status, with_retry_after
from web.voter import remember_voter, voter_key_for

NOT_FOUND = "Nothing runs under this code. Check the code on the big screen."


def _event_or_404(code: str) -> Event:
    try:
        return events.event_get_by_code(code=code)
    except Event.DoesNotExist:
        raise Http404(NOT_FOUND) from None


def _owned_event_or_404(code: str, token: str) -> Event:
    try:
        return events.event_get_for_owner(code=code, token=token)
    except Event.DoesNotExist:
        raise Http404(NOT_FOUND) from None


def join_url(request: HttpRequest, event: Event) -> str:
    return request.build_absolute_uri(reverse("web:event_phone", args=[event.code]))


def _region(screen: str, display: events.EventDisplay, socket_path: str, **extra) -> dict:
    """The context of `partials/event_region.html` for one screen, as a page first shows it."""
    results, version = display.seen(presenter=screen == "presenter")
    return {
        "screen": screen,
        "display": display,
        "results": results,
        "version": version,
        "socket_path": socket_path,
        "answered": False,
        "mine": "",
    } | extra


@require_http_methods(["GET", "HEAD", "POST"])
def event_create(request: HttpRequest) -> HttpResponse:
    form = EventCreateForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "POST" and form.is_valid():
        try:
            event, _, token = events.event_create(
                title=form.cleaned_data["title"],
                questions=form.cleaned_data["questions"],
                ip_address=voters.client_address(request.META),
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        except RateLimited as limited:
            form.add_error(None, limited.message)
            status, retry_after = 429, limited.retry_after
        else:
            return redirect("web:event_manage", code=event.code, token=token)
    if request.method == "POST" and status == 200:
        status = 400
    response = TemplateResponse(request, "events/new.html", {"form": form}, status=status)
    return with_retry_after(response, retry_after)


@require_safe
def join(request: HttpRequest) -> HttpResponse:
    """The landing page's "join with a code" form: to the event's phone page or the poll's page (one
    code space for both, polls/join_codes.py), or the form again saying why not."""
    code = "".join(request.GET.get("code", "").split())
    if not code:
        return TemplateResponse(request, "events/join.html", {})
    target = join_codes.join_target(code=code)
    if isinstance(target, Event):
        return redirect("web:event_phone", code=target.code)
    if target is not None:
        return redirect("web:poll", slug=target.slug)
    return TemplateResponse(request, "events/join.html", {"join_code": code, "join_error": NOT_FOUND}, status=404)


@require_safe
def event_phone(request: HttpRequest, code: str) -> HttpResponse:
    """The phone's page. A new browser gets its voter cookie here, before its socket opens: the socket
    reads who this phone is once, when it connects, and later votes are told to it ("voted")."""
    event = _event_or_404(code)
    return remember_voter(request, _phone_page(request, event, voter_key=voter_key_for(request)))


def _phone_page(
    request: HttpRequest, event: Event, *, voter_key: str | None, status: int = 200, **extra
) -> TemplateResponse:
    display = events.event_display(event=event)
    picks = events.event_voter_picks(event_id=event.id, voter_key=voter_key) if display.question else {}
    mask = picks.get(display.question.id) if display.question else None
    context = _region(
        "phone",
        display,
        f"/ws/events/{event.code}/",
        answered=mask is not None,
        mine=events.mine_positions(mask) if mask is not None else "",
        **extra,
    ) | {"event": event}
    # With HTMX (the phone's vote) only the region's content: the socket stays open (live.js tells it "voted").
    template = "partials/event_region.html#content" if request.htmx else "events/phone.html"
    return TemplateResponse(request, template, context, status=status)


@require_POST
def event_vote(request: HttpRequest, code: str) -> HttpResponse:
    """A phone's vote on the active question; answers with the phone's page, or with HTMX the content of
    its live region (the phone then tells its socket, which sends it the answered fragment from then on)."""
    event = _event_or_404(code)
    try:
        question = events.event_question(event=event, slug=request.POST.get("question", ""))
    except Poll.DoesNotExist:
        return _phone_page(request, event, voter_key=voter_key_for(request), status=400, vote_errors=[NOT_FOUND])
    form = VoteForm(request.POST, poll=question)
    status, retry_after, errors = 400, None, []
    if form.is_valid():
        try:
            services.vote_cast(
                poll=question,
                choice_ids=form.cleaned_data["choice"],
                words=form.cleaned_data["words"],
                voter_key=voter_key_for(request),
                ip_address=voters.client_address(request.META),
            )
        except (services.VoteRejected, RateLimited) as rejection:
            errors = [rejection.message]
            status = vote_rejection_status(rejection)
            retry_after = getattr(rejection, "retry_after", None)
        else:
            if not request.htmx:
                return remember_voter(request, redirect("web:event_phone", code=event.code))
            status = 200
    else:
        errors = [error for field_errors in form.errors.values() for error in field_errors]
    response = _phone_page(
        request,
        event,
        voter_key=voter_key_for(request),
        status=status,
        vote_errors=errors,
        picked=picked_choice_ids(request),
        typed_words=request.POST.getlist("words"),
    )
    return remember_voter(request, with_retry_after(response, retry_after))


@require_safe
def event_live(request: HttpRequest, code: str) -> TemplateResponse:
    event = _event_or_404(code)
    display = events.event_display(event=event)
    theme = request.GET.get("theme") if request.GET.get("theme") in ("dark", "light") else "dark"
    context = _region("screen", display, f"/ws/events/{event.code}/live/") | {
        "event": event,
        "join_url": join_url(request, event),
        "theme": theme,
    }
    return TemplateResponse(request, "events/live.html", context)


@require_safe
@cache_control(public=True, max_age=3600)
def event_qr(request: HttpRequest, code: str) -> HttpResponse:
    event = _event_or_404(code)
    svg = io.BytesIO()
    segno.make(join_url(request, event), error="m").save(
        svg,
        kind="svg",
        scale=8,
        border=2,
        dark="#000",
        light="#fff",
        omitsize=True,
        title=f"QR code to join {event.title}",
    )
    return HttpResponse(svg.getvalue(), content_type="image/svg+xml")


@require_safe
def event_manage(request: HttpRequest, code: str, token: str) -> TemplateResponse:
    event = _owned_event_or_404(code, token)
    return _console_page(request, event, token)


def _console_page(request: HttpRequest, event: Event, token: str, *, status: int = 200, **extra) -> TemplateResponse:
    display = events.event_display(event=event)
    context = _region("presenter", display, f"/ws/events/{event.code}/manage/{token}/", **extra) | {
        "event": event,
        "questions": events.event_questions(event=event),
        "join_url": join_url(request, event),
        "manage_url": request.build_absolute_uri(reverse("web:event_manage", args=[event.code, token])),
        "phones": events.event_phones_connected(event=event),
    }
    template = "partials/event_region.html#content" if request.htmx else "events/manage.html"
    return TemplateResponse(request, template, context, status=status)


@require_POST
def event_control(request: HttpRequest, code: str, token: str) -> HttpResponse:
    event = _owned_event_or_404(code, token)
    form = EventControlForm(request.POST)
    errors = []
    if form.is_valid():
        try:
            event = events.event_control(
                event=event,
                action=form.cleaned_data["action"],
                question=form.cleaned_data["question"] or None,
                seconds=form.cleaned_data["seconds"],
            )
        except ValidationError as error:
            errors = error.messages
    else:
        errors = [error for field_errors in form.errors.values() for error in field_errors]
    if not errors and not request.htmx:
        return redirect("web:event_manage", code=event.code, token=token)
    window = form.cleaned_data.get("seconds") if form.is_valid() else None
    return _console_page(
        request, event, token, status=400 if errors else 200, control_errors=errors, window_seconds=window
    )


@require_safe
def event_phones(request: HttpRequest, code: str, token: str) -> TemplateResponse:
    """The console's count of connected phones, which it asks for every few seconds."""
    event = _owned_event_or_404(code, token)
    context = {"phones": events.event_phones_connected(event=event)}
    return TemplateResponse(request, "events/manage.html#phones", context)
