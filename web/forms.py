"""HTML forms: they parse what a browser sends; the rules themselves live in polls.services."""

import re
import zoneinfo
from datetime import UTC

from django import forms
from django.utils import timezone

from polls.ballot_audit import minute_from_number
from polls.events import WINDOW_MAX_SECONDS, WINDOW_MIN_SECONDS, QuestionInput
from polls.models import (
    CHOICE_MAX_LENGTH,
    CREATOR_VISIBILITIES,
    DESCRIPTION_MAX_LENGTH,
    EVENT_TITLE_MAX_LENGTH,
    MAX_CHOICES,
    MIN_CHOICES,
    QUESTION_MAX_LENGTH,
    SCALE_HIGHEST,
    SCALE_LABEL_MAX_LENGTH,
    SCALE_LOWEST,
    TERM_MAX_LENGTH,
    WORDS_MAX_PER_BALLOT,
    Poll,
)

INITIAL_CHOICE_ROWS = 3

# What each duplicate protection can and cannot stop, in plain words, after its short name (the
# model's label): the create form offers them with these, and the owner page says which one it has.
DEDUPE_HELP = {
    Poll.Dedupe.BROWSER: (
        "Someone who clears their cookies, opens a private window or uses another browser can vote again."
    ),
    Poll.Dedupe.IP: (
        "People sharing Wi-Fi or a network (a hall, an office, a home) can vote only once between them; "
        "someone who switches to mobile data can vote again."
    ),
    Poll.Dedupe.NONE: "Every submission counts, however often the same person sends one.",
}


class ChoiceRowsWidget(forms.Widget):
    """Any number of `choices` inputs, one per row; rows are added by HTMX or a plain submit."""

    def value_from_datadict(self, data, files, name):
        return data.getlist(name) if hasattr(data, "getlist") else data.get(name, [])


class ChoiceRowsField(forms.Field):
    widget = ChoiceRowsWidget
    max_length = CHOICE_MAX_LENGTH  # of each row; the template's inputs say it too
    max_rows = MAX_CHOICES  # for the template to say; polls.services refuses more

    def to_python(self, value):
        rows = [str(text).strip() for text in (value or [])]
        return [text for text in rows if text]

    def validate(self, value):
        super().validate(value)
        for text in value:
            if len(text) > self.max_length:
                raise forms.ValidationError(f"Each choice can be at most {self.max_length} characters.")
            if "\x00" in text:
                raise forms.ValidationError("Choices cannot contain NUL characters.")


def results_visibility_field(**kwargs) -> forms.ChoiceField:
    """Who sees results: the same radio group on the create form and the owner's settings."""
    return forms.ChoiceField(
        choices=CREATOR_VISIBILITIES, label="Who sees results", template_name="forms/radio_fieldset.html", **kwargs
    )


class LocalDateTimeField(forms.DateTimeField):
    """A `datetime-local` input, read in the browser's time zone (sent as `tz` by app.js)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class BrowserTimeZoneMixin:
    """Reads `opens_at` and `closes_at` as wall-clock time in the browser's zone (the hidden `tz` field).

    Without JavaScript no zone is sent and the time is read as UTC, which the form says.
    """

    def clean_tz(self):
        try:
            return zoneinfo.ZoneInfo(self.cleaned_data.get("tz") or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    def clean(self):
        data = super().clean()
        for name in ("opens_at", "closes_at"):
            moment = data.get(name)
            if moment is not None:
                # Django read the naive input as UTC; re-read the same wall-clock time in the browser's zone.
                naive = timezone.make_naive(moment, UTC)
                data[name] = timezone.make_aware(naive, data.get("tz") or zoneinfo.ZoneInfo("UTC"))
        return data


class PollCreateForm(BrowserTimeZoneMixin, forms.Form):
    question = forms.CharField(max_length=QUESTION_MAX_LENGTH)
    description = forms.CharField(max_length=DESCRIPTION_MAX_LENGTH, required=False, widget=forms.Textarea)
    kind = forms.ChoiceField(choices=Poll.Kind, required=False)
    choices = ChoiceRowsField(error_messages={"required": "Give at least 2 choices."})
    scale_min = forms.IntegerField(min_value=SCALE_LOWEST, max_value=SCALE_HIGHEST, required=False)
    scale_max = forms.IntegerField(min_value=SCALE_LOWEST, max_value=SCALE_HIGHEST, required=False)
    scale_low_label = forms.CharField(max_length=SCALE_LABEL_MAX_LENGTH, required=False)
    scale_high_label = forms.CharField(max_length=SCALE_LABEL_MAX_LENGTH, required=False)
    max_words = forms.IntegerField(min_value=1, max_value=WORDS_MAX_PER_BALLOT, required=False)
    profanity_filter = forms.BooleanField(required=False)
    allow_multiple = forms.BooleanField(required=False)
    max_choices = forms.IntegerField(min_value=1, max_value=MAX_CHOICES, required=False)
    opens_at = LocalDateTimeField(required=False)
    closes_at = LocalDateTimeField(required=False)
    results_visibility = results_visibility_field(initial=Poll.Visibility.ALWAYS)
    dedupe = forms.ChoiceField(choices=Poll.Dedupe, initial=Poll.Dedupe.BROWSER)
    tz = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        data["kind"] = data.get("kind") or Poll.Kind.CHOICE
        if data["kind"] in (Poll.Kind.SCALE, Poll.Kind.WORDS):
            # The choice rows are hidden for a scale and a word cloud (CSS), and what they held does not count.
            self.errors.pop("choices", None)
            data["choices"] = []
        if not data.get("allow_multiple"):
            # The maximum is hidden unless multiple choice is on: whatever it held does not count, valid or not.
            self.errors.pop("max_choices", None)
            data["max_choices"] = 1
        elif not data.get("max_choices"):
            data["max_choices"] = max(len(data.get("choices") or []), 1)
        return data

    def dedupe_options(self) -> list[tuple[str, str, str]]:
        """(value, short name, what it can and cannot stop) for each duplicate protection."""
        return [(value, label, DEDUPE_HELP[value]) for value, label in self.fields["dedupe"].choices]

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        fields = ("question", "description", "kind", "choices", "max_choices", "opens_at", "closes_at")
        fields += ("results_visibility",)
        given = {key: data[key] for key in (*fields, "dedupe")}
        if data["kind"] == Poll.Kind.SCALE:  # the scale's fields count only for a scale, as the form shows them
            given |= {
                "scale_min": data["scale_min"],
                "scale_max": data["scale_max"],
                "scale_labels": [data["scale_low_label"], data["scale_high_label"]],
            }
        if data["kind"] == Poll.Kind.WORDS:
            given |= {"max_words": data["max_words"], "profanity_filter": data["profanity_filter"]}
        return given


class WordBoxesField(forms.Field):
    """A word cloud's text boxes, all named `words`: what each holds, as typed (blank ones included).
    The rules for terms are `polls.words`'; this only keeps a forged request within bounds."""

    widget = ChoiceRowsWidget

    def to_python(self, value):
        return [str(text) for text in (value or [])]

    def validate(self, value):
        if len(value) > WORDS_MAX_PER_BALLOT or any(len(text) > 4 * TERM_MAX_LENGTH for text in value):
            raise forms.ValidationError(f"Send at most {WORDS_MAX_PER_BALLOT} words, each a short phrase.")


class VoteForm(forms.Form):
    """The voter's answer: radio buttons for single choice, checkboxes for multiple, text boxes for a
    word cloud."""

    choice = forms.TypedMultipleChoiceField(
        coerce=int,
        error_messages={
            "required": "Pick a choice before voting.",
            "invalid_choice": "That choice is not part of this poll.",
        },
    )
    words = WordBoxesField(required=False)

    def __init__(self, *args, poll: Poll, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["choice"].choices = [(choice.id, choice.text) for choice in poll.choices.all()]
        self.fields["choice"].required = not poll.is_words


class WordModerationForm(forms.Form):
    """One moderation change of a word cloud, as the owner page's buttons post it (`web.moderation`)."""

    action = forms.ChoiceField(choices=[(name, name) for name in ("hide", "show", "filter_on", "filter_off")])
    term = forms.CharField(required=False, max_length=4 * TERM_MAX_LENGTH, strip=False)


class PollSettingsForm(BrowserTimeZoneMixin, forms.Form):
    closes_at = LocalDateTimeField(required=False)
    results_visibility = results_visibility_field()
    tz = forms.CharField(required=False, widget=forms.HiddenInput)


class VoidBurstForm(forms.Form):
    """A flagged burst the owner voids: the network's salted hash and the window's first minute."""

    network = forms.RegexField(regex=r"^[0-9a-f]{64}$")
    minute = forms.IntegerField(min_value=0)  # whole minutes since 1970, as the audit counts them

    def clean_minute(self):
        return minute_from_number(self.cleaned_data["minute"])


# A question's second line that makes it a rating scale: "scale 1-5", or with end labels "scale 0-10: Never / Surely".
_SCALE_LINE = re.compile(r"^scale\s+(\d+)\s*(?:-|to)\s*(\d+)\s*(?::\s*(.*?)\s*/\s*(.*?))?\s*$", re.IGNORECASE)
# One that makes it a word cloud: "words", or "words 2" for the number of words each voter may send.
_WORDS_LINE = re.compile(r"^words(?:\s+(\d+))?$", re.IGNORECASE)


class EventCreateForm(forms.Form):
    """An event typed as plain text: one block per question, its first line the question and each next
    line a choice, blocks separated by a blank line; a block whose second line reads "scale 1-5" (or
    "scale 1-5: low / high") is a rating scale, and one whose second line reads "words" (or "words 2") a
    word cloud. No JavaScript needed to add questions or choices."""

    title = forms.CharField(max_length=EVENT_TITLE_MAX_LENGTH, label="Event title")
    questions = forms.CharField(
        label="Questions",
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "true"}),
        help_text=(
            "First line: the question. Next lines: its choices, one per line, or “scale 1-5” (with end labels: "
            "“scale 1-5: Bad / Great”) for a rating, or “words” (“words 2”: two words each) for a word cloud. "
            "A blank line starts the next question."
        ),
    )

    def clean_questions(self) -> list[QuestionInput]:
        text = self.cleaned_data["questions"].replace("\r\n", "\n")
        blocks = [block for block in re.split(r"\n\s*\n", text) if block.strip()]
        return [self._question(number, block) for number, block in enumerate(blocks, start=1)]

    @staticmethod
    def _question(number: int, block: str) -> QuestionInput:
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        words = _WORDS_LINE.match(lines[1]) if len(lines) == 2 else None
        if words:
            return QuestionInput(question=lines[0], kind=Poll.Kind.WORDS, max_words=int(words[1]) if words[1] else None)
        scale = _SCALE_LINE.match(lines[1]) if len(lines) == 2 else None
        if scale:
            low, high = int(scale[1]), int(scale[2])
            labels = [scale[3] or "", scale[4] or ""]
            return QuestionInput(
                question=lines[0], kind=Poll.Kind.SCALE, scale_min=low, scale_max=high, scale_labels=labels
            )
        if len(lines) < 1 + MIN_CHOICES:
            raise forms.ValidationError(
                f"Question {number} needs at least {MIN_CHOICES} choices, each on its own line under it "
                "(or “scale 1-5” for a rating, “words” for a word cloud)."
            )
        return QuestionInput(question=lines[0], choices=lines[1:])


class EventControlForm(forms.Form):
    """One presenter action, as the console's buttons post it; the rules are `polls.events`'."""

    action = forms.CharField(max_length=16)
    seconds = forms.IntegerField(required=False, min_value=WINDOW_MIN_SECONDS, max_value=WINDOW_MAX_SECONDS)
    question = forms.CharField(required=False, max_length=16)
