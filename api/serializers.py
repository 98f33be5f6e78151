"""What the API accepts and what it answers. Input fields are strict about JSON types: a number
where text belongs is an error, not silently turned into text."""

from rest_framework import serializers

from polls.events import ACTIONS, WINDOW_MAX_SECONDS, WINDOW_MIN_SECONDS
from polls.models import (
    CHOICE_MAX_LENGTH,
    CREATOR_VISIBILITIES,
    DESCRIPTION_MAX_LENGTH,
    EVENT_MAX_QUESTIONS,
    EVENT_TITLE_MAX_LENGTH,
    MAX_CHOICES,
    MIN_CHOICES,
    QUESTION_MAX_LENGTH,
    SCALE_HIGHEST,
    SCALE_LABEL_MAX_LENGTH,
    SCALE_LOWEST,
    TERM_MAX_LENGTH,
    VOTER_KEY_MAX_LENGTH,
    WORDS_DEFAULT_PER_BALLOT,
    WORDS_MAX_PER_BALLOT,
    Poll,
)
from polls.voters import voter_key_normalise
from polls.words import CLOUD_MAX_TERMS

# A word as sent, before the domain trims it and checks its 40 characters (polls/words.py): room
# for the spaces a phone's keyboard adds, while a megabyte of text stays a 400 of the shape.
WORD_MAX_RAW_LENGTH = 200


class TextField(serializers.CharField):
    """A JSON string of real text: no numbers or booleans coerced, no NUL bytes, no lone surrogates."""

    default_error_messages = {
        "invalid": "Must be text (a JSON string).",
        "not_text": "Contains characters that are not text.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("not_text")
        return super().to_internal_value(data)


class TrueOrFalseField(serializers.BooleanField):
    """A JSON `true` or `false`; `1`, `"yes"` or `"true"` are errors."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class WholeNumberField(serializers.IntegerField):
    """A JSON integer; `true`, `1.5` or `"1"` are errors."""

    default_error_messages = {"invalid": "Must be a whole number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class VoterKeyField(TextField):
    """A voter key, normalised by the domain's rule (`polls.voters`) before anything uses it."""

    default_error_messages = {
        "only_spaces": "The voter key is only spaces: send 1 to 64 characters that are not all spaces.",
    }

    def to_internal_value(self, data):
        key = voter_key_normalise(super().to_internal_value(data))
        if not key:
            self.fail("only_spaces")
        return key


def voter_field(**kwargs) -> VoterKeyField:
    return VoterKeyField(
        min_length=1,
        max_length=VOTER_KEY_MAX_LENGTH,
        trim_whitespace=False,
        help_text=(
            "An opaque key naming the voter, 1 to 64 characters; the same (poll, voter) is one ballot. Compared "
            "after Unicode NFKC normalisation, case folding and trimming: `Alice` and ` alice ` are one voter."
        ),
        **kwargs,
    )


# --- Input ---------------------------------------------------------------------------------


class PollCreateInput(serializers.Serializer):
    question = TextField(max_length=QUESTION_MAX_LENGTH)
    choices = serializers.ListField(
        child=TextField(max_length=CHOICE_MAX_LENGTH),
        min_length=MIN_CHOICES,
        max_length=MAX_CHOICES,
        required=False,
        help_text=f"{MIN_CHOICES} to {MAX_CHOICES} different answers, each up to {CHOICE_MAX_LENGTH} characters "
        "(kind `choice`, and only then).",
    )
    kind = serializers.ChoiceField(choices=Poll.Kind.choices, required=False, help_text="Default `choice`.")
    scale_min = WholeNumberField(
        min_value=SCALE_LOWEST, max_value=SCALE_HIGHEST, required=False, help_text="Kind `scale`: the lowest value (1)."
    )
    scale_max = WholeNumberField(
        min_value=SCALE_LOWEST, max_value=SCALE_HIGHEST, required=False, help_text="Kind `scale`: the highest (5)."
    )
    scale_labels = serializers.ListField(
        child=TextField(max_length=SCALE_LABEL_MAX_LENGTH, allow_blank=True),
        min_length=2,
        max_length=2,
        required=False,
        help_text="Kind `scale`: [low end's label, high end's label]; either may be empty.",
    )
    max_words = WholeNumberField(
        min_value=1,
        max_value=WORDS_MAX_PER_BALLOT,
        required=False,
        help_text=f"Kind `words`: how many words or phrases a voter may send (default {WORDS_DEFAULT_PER_BALLOT}).",
    )
    profanity_filter = TrueOrFalseField(
        required=False,
        help_text="Kind `words`: leave out terms the profanity filter's word lists hold (default false). "
        "Ignored for other kinds, which answer false.",
    )
    description = TextField(max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True)
    max_choices = WholeNumberField(
        min_value=1, max_value=MAX_CHOICES, required=False, help_text="How many choices a voter may pick (default 1)."
    )
    opens_at = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO-8601; default: now.")
    closes_at = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO-8601; default: no deadline.")
    results_visibility = serializers.ChoiceField(choices=CREATOR_VISIBILITIES, required=False)
    dedupe = serializers.ChoiceField(choices=Poll.Dedupe.choices, required=False)


class VoteInput(serializers.Serializer):
    poll = TextField(max_length=64, help_text="The poll's id (its slug).")
    choices = serializers.ListField(
        child=WholeNumberField(),
        max_length=MAX_CHOICES,
        required=False,
        help_text="Ids of the chosen choices of that poll (kind `choice`).",
    )
    value = WholeNumberField(required=False, help_text="The rating (kind `scale`): `scale_min` to `scale_max`.")
    words = serializers.ListField(
        child=TextField(max_length=WORD_MAX_RAW_LENGTH, allow_blank=True, trim_whitespace=False),
        min_length=1,
        max_length=WORDS_MAX_PER_BALLOT,
        required=False,
        error_messages={
            "min_length": "Type at least one word.",
            "max_length": f"Send at most {WORDS_MAX_PER_BALLOT} words.",
        },
        help_text=f"Kind `words`: 1 to the poll's `max_words` words or short phrases, each 1 to {TERM_MAX_LENGTH} "
        "characters once trimmed. Spellings of one term (`AI`, ` ai `) count once; blank entries are skipped.",
    )
    voter = voter_field(required=False)

    def validate(self, attrs):
        sent = [field for field in ("choices", "value", "words") if field in attrs]
        if len(sent) != 1:
            raise serializers.ValidationError(
                {
                    "words" if "words" in sent else "choices": [
                        "Send 'choices' (a poll of choices), 'value' (a rating scale) or 'words' (a word cloud): "
                        "one of the three."
                    ]
                }
            )
        return attrs


class EventQuestionInput(PollCreateInput):
    """A question: a poll body as for creating a poll. Its presenter opens, closes and reveals it, so
    `opens_at`, `closes_at` and `results_visibility` are refused rather than silently ignored."""

    def validate(self, attrs):
        for field in ("opens_at", "closes_at", "results_visibility"):
            if attrs.get(field) is not None:
                raise serializers.ValidationError(
                    {field: "An event's presenter opens, closes and reveals its questions: leave this out."}
                )
        return attrs


class EventCreateInput(serializers.Serializer):
    title = TextField(max_length=EVENT_TITLE_MAX_LENGTH)
    questions = serializers.ListField(
        child=EventQuestionInput(),
        min_length=1,
        max_length=EVENT_MAX_QUESTIONS,
        help_text=f"1 to {EVENT_MAX_QUESTIONS} questions, in the order the presenter asks them.",
    )


class EventControlInput(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=ACTIONS,
        help_text="next, previous, goto (with `question`), open (optionally with `seconds`), close, reveal, hide, end.",
    )
    question = TextField(max_length=64, required=False, help_text="For goto: the question's id (its slug).")
    seconds = WholeNumberField(
        min_value=WINDOW_MIN_SECONDS,
        max_value=WINDOW_MAX_SECONDS,
        required=False,
        help_text="For open: the vote window in seconds; without it the question stays open until closed.",
    )


class ResultsQuery(serializers.Serializer):
    voter = voter_field(
        required=False,
    )


# --- Output --------------------------------------------------------------------------------


class ChoiceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class PollOutput(serializers.Serializer):
    """A poll as the API shows it, read from the poll itself (`context["request"]` makes its links absolute)."""

    id = serializers.CharField(source="slug", help_text="The poll's slug: use it in every other call.")
    code = serializers.CharField(
        allow_null=True, help_text="6 digits a phone types at /join/ (null for an event's question, or once archived)."
    )
    url = serializers.HyperlinkedIdentityField(
        view_name="web:poll", lookup_field="slug", help_text="The poll's page, to share."
    )
    results_url = serializers.HyperlinkedIdentityField(view_name="web:results", lookup_field="slug")
    live_url = serializers.HyperlinkedIdentityField(
        view_name="web:live", lookup_field="slug", help_text="Full-screen results for a big screen."
    )
    question = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    choices = ChoiceOutput(many=True)
    max_choices = serializers.IntegerField()
    opens_at = serializers.DateTimeField(allow_null=True)
    closes_at = serializers.DateTimeField(allow_null=True)
    closed = serializers.SerializerMethodField(
        help_text="True when the poll takes no votes now (closed, past its deadline, not open yet)."
    )
    results_visibility = serializers.ChoiceField(
        choices=Poll.Visibility.choices, help_text="`presenter`: an event's question whose results are not revealed."
    )
    kind = serializers.ChoiceField(choices=Poll.Kind.choices)
    scale_min = serializers.IntegerField(allow_null=True, help_text="Kind `scale` only.")
    scale_max = serializers.IntegerField(allow_null=True, help_text="Kind `scale` only.")
    scale_labels = serializers.SerializerMethodField(help_text="Kind `scale`: [low, high]; null for other kinds.")
    max_words = serializers.IntegerField(
        allow_null=True, help_text="Kind `words`: how many words a voter may send; null for other kinds."
    )
    profanity_filter = serializers.BooleanField(
        help_text="Kind `words`: whether profane terms are left out of the results (false for other kinds)."
    )
    dedupe = serializers.ChoiceField(choices=Poll.Dedupe.choices)
    created_at = serializers.DateTimeField()

    def get_closed(self, poll: Poll) -> bool:
        return not poll.is_open()

    def get_scale_labels(self, poll: Poll) -> list[str] | None:
        return [poll.scale_low_label, poll.scale_high_label] if poll.is_scale else None


class PollCreatedOutput(PollOutput):
    manage_url = serializers.SerializerMethodField(
        help_text="The owner's page. It holds the poll's secret: it is shown only in this answer, keep it."
    )

    def get_manage_url(self, poll: Poll) -> str:
        return self.context["manage_url"]


class VoteOutput(serializers.Serializer):
    poll = serializers.CharField()
    choices = serializers.ListField(child=serializers.IntegerField(), help_text="[] for a word cloud.")
    words = serializers.ListField(
        child=serializers.CharField(),
        help_text="Kind `words`: the terms as kept (trimmed, blank entries and second spellings of a term "
        "dropped); [] for other kinds.",
    )
    voter = serializers.CharField(
        allow_null=True, help_text="The voter key sent; null when the browser's voter cookie identified the voter."
    )


class ChoiceResultOutput(ChoiceOutput):
    votes = serializers.IntegerField(help_text="How many ballots picked this choice.")


class ScaleValueOutput(serializers.Serializer):
    value = serializers.IntegerField()
    votes = serializers.IntegerField()


class WordCountOutput(serializers.Serializer):
    text = serializers.CharField(help_text="The term in its most common spelling.")
    count = serializers.IntegerField(help_text="How many ballots named it, in any spelling.")


class ResultsOutput(serializers.Serializer):
    poll = serializers.CharField()
    question = serializers.CharField()
    total = serializers.IntegerField(help_text="Ballots counted.")
    closed = serializers.BooleanField()
    version = serializers.IntegerField(help_text="Grows with every counted ballot; never goes back.")
    kind = serializers.ChoiceField(choices=Poll.Kind.choices)
    choices = ChoiceResultOutput(
        many=True, help_text="For a scale, its values as choices (their text is the value); [] for a word cloud."
    )
    average = serializers.FloatField(
        required=False, allow_null=True, help_text="Kind `scale`: the average rating; null before the first ballot."
    )
    median = serializers.FloatField(required=False, allow_null=True, help_text="Kind `scale`: the median rating.")
    distribution = ScaleValueOutput(many=True, required=False, help_text="Kind `scale`: every value from min to max.")
    words = WordCountOutput(
        many=True,
        required=False,
        help_text=f"Kind `words`: at most {CLOUD_MAX_TERMS} terms, most frequent first, without the terms the owner "
        "hid (nor profane ones while the poll's profanity filter is on).",
    )


class EventStateOutput(serializers.Serializer):
    active = serializers.CharField(
        allow_null=True, help_text="The id of the question on screen; null before the first."
    )
    index = serializers.IntegerField(allow_null=True, help_text="Its place in `questions`, from 0.")
    phase = serializers.ChoiceField(
        choices=["waiting", "open", "closed"], help_text="waiting: shown, not open; open: taking votes; closed."
    )
    closes_at = serializers.DateTimeField(allow_null=True, help_text="When the open window ends, if it has one.")
    reveal = serializers.BooleanField(help_text="Whether phones and the big screen show the results.")
    ended = serializers.BooleanField()
    version = serializers.IntegerField(help_text="Grows with every change of state.")


class EventOutput(serializers.Serializer):
    id = serializers.CharField(source="event.slug", help_text="The event's id (a slug): use it in every other call.")
    code = serializers.CharField(source="event.code", help_text="6 digits, typed on a phone to join.")
    title = serializers.CharField(source="event.title")
    join_url = serializers.CharField(help_text="The phones' page.")
    live_url = serializers.CharField(help_text="The big screen.")
    questions = PollOutput(many=True)
    state = EventStateOutput()


class EventCreatedOutput(EventOutput):
    manage_url = serializers.CharField(
        help_text="The presenter's console. Its last part is the owner token, for the Authorization header of "
        "control calls. It is shown only in this answer: keep it."
    )


class EventControlOutput(serializers.Serializer):
    state = EventStateOutput()
