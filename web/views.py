"""HTML views: thin doors that parse, call a service or selector, and render.

Every page works without JavaScript (forms post and redirect); with HTMX the same URL
returns only the fragment that changes.
"""

import io
import itertools
from collections.abc import AsyncIterator, Iterator

import segno
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from crowdtick.health import readiness
from polls import ballot_audit, jobs, selectors, services, voters
from polls.models import MAX_CHOICES, Poll
from polls.ratelimit import RateLimited
from web.forms import DEDUPE_HELP, INITIAL_CHOICE_ROWS, PollCreateForm, PollSettingsForm, VoidBurstForm, VoteForm
from web.voter import remember_voter, voter_key_for

# Status codes for votes that cannot count, so scripts and tests can tell them apart.
_VOTE_REJECTION_STATUS = {services.AlreadyVoted: 409, services.PollClosed: 403, RateLimited: 429}


def vote_rejection_status(rejection: Exception) -> int:
    """The status code of a vote that cannot count, so scripts and tests can tell the reasons apart."""
    return next((code for kind, code in _VOTE_REJECTION_STATUS.items() if isinstance(rejection, kind)), 400)


def picked_choice_ids(request: HttpRequest) -> set[int]:
    """What the voter ticked, kept ticked when the vote is sent back: a refused vote never makes them start over
    (nor do a word cloud's boxes lose what was typed: `typed_words`)."""
    return {int(value) for value in request.POST.getlist("choice") if value.isdigit()}


def _poll_or_404(slug: str) -> Poll:
    try:
        return selectors.poll_get(slug=slug)
    except Poll.DoesNotExist:
        raise Http404("No poll lives at this address.") from None


def _poll_with_tally_or_404(slug: str) -> tuple[Poll, dict[str, str] | None]:
    """For pages that may show results: the poll and its tally in one Redis round trip."""
    try:
        return selectors.poll_get_with_tally(slug=slug)
    except Poll.DoesNotExist:
        raise Http404("No poll lives at this address.") from None


def owned_poll_or_404(slug: str, token: str) -> Poll:
    try:
        return selectors.poll_get_for_owner(slug=slug, token=token)
    except Poll.DoesNotExist:
        raise Http404("No poll lives at this address.") from None


def share_url(request: HttpRequest, poll: Poll) -> str:
    return request.build_absolute_uri(reverse("web:poll", args=[poll.slug]))


def _results_context(
    request: HttpRequest,
    poll: Poll,
    *,
    is_owner: bool = False,
    voter_key: str | None = None,
    voted_mask: int | None = None,
    cached_tally: dict[str, str] | None = None,
) -> dict:
    """What every results-showing page needs; `voter_key` overrides the cookie's (a first vote sets it).

    `voted_mask` is the ballot the caller knows was just counted (its choice bits): it saves a
    database lookup per vote. Otherwise this browser's ballot is looked up, to show "you voted" and
    mark its own pick. `cached_tally` is the tally read with the poll (`_poll_with_tally_or_404`).
    """
    if voted_mask is None:  # every page shows the vote form or "you voted": always worth knowing here
        voter_key = voter_key or voters.voter_key_from_cookies(request.COOKIES)
        voted_mask = selectors.voter_pick(poll=poll, voter_key=voter_key)
    has_voted = voted_mask is not None
    seen = selectors.poll_results_for_viewer(
        poll=poll, has_voted=has_voted, is_owner=is_owner, cached_tally=cached_tally
    )
    return {
        "poll": poll,
        "has_voted": has_voted,
        "mine": selectors.mine_positions(voted_mask) if has_voted else "",
        "results": seen.results,
        "hidden_reason": seen.hidden_reason,
        "share_url": share_url(request, poll),
    }


@require_safe
def landing(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(
        request, "landing.html", {"form": PollCreateForm(), "choice_rows": [""] * INITIAL_CHOICE_ROWS}
    )


@require_safe
def choice_row(request: HttpRequest) -> TemplateResponse:
    """One more empty choice row, swapped into the create form by HTMX."""
    return TemplateResponse(request, "landing.html#choice-row", {"text": "", "form": PollCreateForm()})


@require_POST
def poll_create(request: HttpRequest) -> HttpResponse:
    form = PollCreateForm(request.POST)
    rows = request.POST.getlist("choices")
    if "add_choice" in request.POST:
        # The no-JavaScript way to add a row: show the same form again with one more, up to the maximum.
        context = {"form": form, "choice_rows": rows, "adding": True}
        if len(rows) >= MAX_CHOICES:
            context["rows_full"] = f"A poll can have at most {MAX_CHOICES} choices."
        else:
            context["choice_rows"] = rows + [""]
        return TemplateResponse(request, "landing.html", context)
    status, retry_after = 400, None
    if form.is_valid():
        try:
            poll, owner_token = services.poll_create(
                **form.service_kwargs(), ip_address=voters.client_address(request.META)
            )
        except ValidationError as error:
            form.add_error(None, error)
        except RateLimited as limited:
            form.add_error(None, limited.message)
            status, retry_after = 429, limited.retry_after
        else:
            # Shown on the next owner page only: a query string would stay in the bookmark and show it on every visit.
            messages.success(request, "Your poll is ready.", extra_tags="created")
            return redirect("web:manage", slug=poll.slug, token=owner_token)
    rows = rows if len(rows) >= 2 else rows + [""] * (2 - len(rows))
    response = TemplateResponse(request, "landing.html", {"form": form, "choice_rows": rows}, status=status)
    return with_retry_after(response, retry_after)


def with_retry_after(response: HttpResponse, seconds: int | None) -> HttpResponse:
    # A 429 says when to come back, for people (the message) and programs (the header).
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


@require_safe
def poll_detail(request: HttpRequest, slug: str) -> TemplateResponse:
    poll, cached_tally = _poll_with_tally_or_404(slug)
    context = _results_context(request, poll, cached_tally=cached_tally)
    context["form"] = VoteForm(poll=poll)
    return TemplateResponse(request, "poll.html", context)


@require_POST
def vote(request: HttpRequest, slug: str) -> HttpResponse:
    poll = _poll_or_404(slug)
    form = VoteForm(request.POST, poll=poll)
    status, retry_after = 400, None
    if form.is_valid():
        try:
            cast = services.vote_cast(
                poll=poll,
                choice_ids=form.cleaned_data["choice"],
                words=form.cleaned_data["words"],
                voter_key=voter_key_for(request),
                ip_address=voters.client_address(request.META),
            )
        except (services.VoteRejected, RateLimited) as rejection:
            form.add_error(None, rejection.message)
            status = vote_rejection_status(rejection)
            retry_after = getattr(rejection, "retry_after", None)
        else:
            if not request.htmx:
                return remember_voter(request, redirect("web:poll", slug=poll.slug))
            context = _results_context(request, poll, voted_mask=cast.choice_mask) | {"just_voted": True}
            return remember_voter(request, TemplateResponse(request, "poll.html#poll-body", context))
    kept = {"picked": picked_choice_ids(request), "typed_words": request.POST.getlist("words")}
    context = _results_context(request, poll, voter_key=voter_key_for(request)) | {"form": form} | kept
    template = "poll.html#poll-body" if request.htmx else "poll.html"
    response = TemplateResponse(request, template, context, status=status)
    return remember_voter(request, with_retry_after(response, retry_after))


@require_safe
def results(request: HttpRequest, slug: str) -> TemplateResponse:
    poll, cached_tally = _poll_with_tally_or_404(slug)
    return TemplateResponse(request, "results.html", _results_context(request, poll, cached_tally=cached_tally))


@require_safe
def live(request: HttpRequest, slug: str) -> TemplateResponse:
    poll, cached_tally = _poll_with_tally_or_404(slug)
    theme = request.GET.get("theme") if request.GET.get("theme") in ("dark", "light") else "dark"
    overlay = request.GET.get("overlay") == "1"
    context = _results_context(request, poll, cached_tally=cached_tally) | {"theme": theme, "overlay": overlay}
    if overlay:
        return _framable(request, context)
    return TemplateResponse(request, "live.html", context)


# Stream tools may embed the overlay in a frame; it has no control to click, so framing it gives
# another site nothing to hijack. Every other page keeps frame-ancestors 'none'.
@csp_override(settings.SECURE_CSP | {"frame-ancestors": ["*"]})
@xframe_options_exempt
def _framable(request: HttpRequest, context: dict) -> TemplateResponse:
    return TemplateResponse(request, "live.html", context)


@require_safe
@cache_control(public=True, max_age=3600)
def qr_svg(request: HttpRequest, slug: str) -> HttpResponse:
    poll = _poll_or_404(slug)
    qr = segno.make(share_url(request, poll), error="m")
    # A standalone document (with its xmlns, or no browser draws it) that scales to any size by its viewBox.
    svg = io.BytesIO()
    title = f"QR code for {poll.question}"
    qr.save(svg, kind="svg", scale=8, border=2, dark="#000", light="#fff", omitsize=True, title=title)
    return HttpResponse(svg.getvalue(), content_type="image/svg+xml")


@require_safe
def manage(request: HttpRequest, slug: str, token: str) -> TemplateResponse:
    return owner_page(request, owned_poll_or_404(slug, token), token)


def owner_page(request: HttpRequest, poll: Poll, token: str, *, status: int = 200, **extra) -> TemplateResponse:
    """The owner page with its settings as saved; `extra` says what an action sent back could not do."""
    form = PollSettingsForm(initial={"closes_at": poll.closes_at, "results_visibility": poll.results_visibility})
    return _manage_page(request, poll, token, form, status=status, **extra)


def _manage_page(
    request: HttpRequest, poll: Poll, token: str, settings_form: PollSettingsForm, status: int = 200, **extra
):
    activity = selectors.poll_owner_activity(poll=poll)
    context = _results_context(request, poll, is_owner=True) | {
        "token": token,
        "manage_url": request.build_absolute_uri(reverse("web:manage", args=[poll.slug, token])),
        "settings_form": settings_form,
        "dedupe_help": DEDUPE_HELP[poll.dedupe],
        "chart": activity.chart,
        "audit": activity.audit,
        "voided": _voided_count(request),
        "export_inline": selectors.poll_export_inline(poll=poll),
        **extra,
    }
    if not context["export_inline"]:
        context["export"] = selectors.poll_export_status(poll=poll)
    return TemplateResponse(request, "manage.html", context, status=status)


def _voided_count(request: HttpRequest) -> int | None:
    """How many ballots the owner just voided, as the redirect after a void reports it."""
    voided = request.GET.get("voided", "")
    return int(voided) if voided.isdigit() else None


@require_safe
def manage_chart(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """The votes-per-minute chart and the ballot audit, refreshed by HTMX (the audit out of band);
    without it, the owner page shows the same."""
    poll = owned_poll_or_404(slug, token)
    if not request.htmx:
        return redirect(reverse("web:manage", args=[slug, token]) + "#vote-chart")
    activity = selectors.poll_owner_activity(poll=poll)
    context = {"poll": poll, "token": token, "chart": activity.chart, "audit": activity.audit}
    return TemplateResponse(request, "manage.html#owner-refresh", context)


@require_POST
def manage_void(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Voids a flagged burst; HTMX gets the audit back, a plain browser the owner page at it."""
    poll = owned_poll_or_404(slug, token)
    form = VoidBurstForm(request.POST)
    if not form.is_valid():
        return HttpResponse("That burst could not be read: reload the owner page and try again.", status=400)
    try:
        voided = services.ballots_void_burst(
            poll=poll, network=form.cleaned_data["network"], minute=form.cleaned_data["minute"]
        )
    except services.VoidUnavailable as unavailable:
        return HttpResponse(unavailable.message, status=200 if request.htmx else 503)
    if not request.htmx:
        return redirect(reverse("web:manage", args=[slug, token]) + f"?voided={voided}#ballot-audit")
    context = {"poll": poll, "token": token, "audit": ballot_audit.ballot_audit(poll=poll), "voided": voided}
    return TemplateResponse(request, "manage.html#ballot-audit", context)


@require_POST
def manage_close(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    return _owner_action(request, slug, token, services.poll_close)


@require_POST
def manage_reopen(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    return _owner_action(request, slug, token, services.poll_reopen)


def _owner_action(request: HttpRequest, slug: str, token: str, action) -> HttpResponse:
    poll = owned_poll_or_404(slug, token)
    try:
        action(poll=poll)
    except ValidationError as error:  # an event's question: its presenter decides
        return owner_page(request, poll, token, status=400, owner_error=error.messages[0])
    return redirect("web:manage", slug=slug, token=token)


@require_POST
def manage_settings(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    poll = owned_poll_or_404(slug, token)
    form = PollSettingsForm(request.POST)
    if form.is_valid():
        try:
            services.poll_update_settings(
                poll=poll,
                closes_at=form.cleaned_data["closes_at"],
                results_visibility=form.cleaned_data["results_visibility"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("web:manage", slug=slug, token=token)
    return _manage_page(request, poll, token, form, status=400)


@require_http_methods(["GET", "HEAD", "POST"])
def manage_delete(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """GET (and HEAD) asks for confirmation; POST deletes for good."""
    poll = owned_poll_or_404(slug, token)
    if request.method != "POST":
        return TemplateResponse(request, "delete.html", {"poll": poll, "token": token})
    try:
        services.poll_delete(poll=poll)
    except ValidationError as error:
        context = {"poll": poll, "token": token, "error": error.messages[0]}
        return TemplateResponse(request, "delete.html", context, status=400)
    return TemplateResponse(request, "deleted.html", {"question": poll.question})


@require_safe
def manage_export(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    poll = owned_poll_or_404(slug, token)
    if not selectors.poll_export_inline(poll=poll):
        # Too many ballots to stream from a web worker: the file is prepared in the background.
        return redirect("web:manage_export_prepare", slug=slug, token=token)
    lines = selectors.ballots_csv_lines(poll=poll)
    if isinstance(request, ASGIRequest):  # an ASGI server wants an async body, or Django reads it all first
        lines = _in_batches(lines)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="crowdtick-{poll.slug}.csv"'
    return response


async def _in_batches(lines: Iterator[str], size: int = 1000) -> AsyncIterator[str]:
    """The CSV as an ASGI server sends it: the database is read in Django's sync thread, a batch of lines a hop."""
    read_batch = sync_to_async(lambda: "".join(itertools.islice(lines, size)))
    while batch := await read_batch():
        yield batch


@require_http_methods(["GET", "HEAD", "POST"])
def manage_export_prepare(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """POST starts the background export of a large poll (unless one is pending or fresh); GET shows its state."""
    poll = owned_poll_or_404(slug, token)
    error, status = None, 200
    if request.method == "POST":
        try:
            jobs.poll_export_start(poll=poll)
        except jobs.ExportUnavailable as unavailable:
            # HTMX swaps no 5xx answer (base.html): it gets the message with a 200, a plain browser the real status.
            error, status = unavailable.message, 200 if request.htmx else 503
        else:
            if not request.htmx:
                return redirect("web:manage_export_prepare", slug=slug, token=token)
    export = selectors.poll_export_status(poll=poll)
    if request.htmx and request.GET.get("polling") and export.pending:
        return HttpResponse(status=204)  # unchanged: no swap, so screen readers hear nothing new
    context = {"poll": poll, "token": token, "export": export, "export_error": error}
    template = "export.html#export-status" if request.htmx else "export.html"
    return TemplateResponse(request, template, context, status=status)


@require_safe
def manage_export_file(request: HttpRequest, slug: str, token: str) -> FileResponse:
    """The finished export file; its path comes from the poll the owner token opened, never from the request."""
    poll = owned_poll_or_404(slug, token)
    path = selectors.poll_export_status(poll=poll).path
    try:
        if path is None:
            raise FileNotFoundError
        file = path.open("rb")
    except FileNotFoundError:  # none written yet, or the poll was deleted meanwhile
        raise Http404("No export file has been written for this poll yet.") from None
    filename = f"crowdtick-{poll.slug}.csv"
    return FileResponse(file, as_attachment=True, filename=filename, content_type="text/csv; charset=utf-8")


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and bots ask for /favicon.ico whatever the page links: the same SVG icon, from the static files."""
    with open(finders.find("favicon.svg"), "rb") as icon:
        return HttpResponse(icon.read(), content_type="image/svg+xml")


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ready = all(checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
