"""Rating scales (DESIGN.md, "Question kinds"): a poll whose values from min to max are its choices."""

import pytest
from django.core.exceptions import ValidationError
from django.test import TestCase

from polls import selectors, services
from polls.models import Poll

pytestmark = pytest.mark.django_db


def make_scale(**kwargs) -> Poll:
    fields = {"question": "How was the talk?", "choices": [], "kind": "scale"} | kwargs
    poll, _ = services.poll_create(**fields)
    return selectors.poll_get(slug=poll.slug)


def rate(poll: Poll, value: int, voter: str) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.vote_cast(
            poll=poll, choice_ids=services.ballot_choice_ids(poll=poll, value=value), voter_key=voter, ip_address=None
        )


def test_a_scale_defaults_to_1_to_5_and_its_values_are_its_choices():
    poll = make_scale(scale_labels=["Dull", " Brilliant "])
    assert (poll.kind, poll.scale_min, poll.scale_max, poll.max_choices) == ("scale", 1, 5, 1)
    assert [choice.text for choice in poll.choices.all()] == ["1", "2", "3", "4", "5"]
    assert (poll.scale_low_label, poll.scale_high_label) == ("Dull", "Brilliant")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scale_min": 3, "scale_max": 3}, "scale_max"),
        ({"scale_min": -1, "scale_max": 5}, "scale_max"),
        ({"scale_min": 0, "scale_max": 11}, "scale_max"),
        ({"choices": ["A", "B"]}, "choices"),
        ({"scale_labels": ["only one"]}, "scale_labels"),
        ({"scale_labels": ["x" * 41, ""]}, "scale_labels"),
    ],
)
def test_a_bad_scale_is_refused_naming_the_field(fields, field):
    with pytest.raises(ValidationError) as error:
        make_scale(**fields)
    assert field in error.value.message_dict


def test_a_choice_poll_takes_no_scale_fields():
    with pytest.raises(ValidationError) as error:
        services.poll_create(question="Q?", choices=["A", "B"], scale_max=5)
    assert "kind" in error.value.message_dict


def test_average_median_and_distribution_follow_the_ballots():
    poll = make_scale(scale_min=0, scale_max=10)
    empty = selectors.poll_results(poll=poll).scale
    assert (empty.average, empty.median) == (None, None) and len(empty.distribution) == 11
    for voter, value in enumerate([2, 9, 9, 10]):
        rate(poll, value, f"v{voter}")
    results = selectors.poll_results(poll=poll)
    assert results.total == 4
    assert (results.scale.average, results.scale.median) == (7.5, 9.0)
    assert results.scale.distribution[9] == (9, 2) and results.scale.distribution[0] == (0, 0)
    rate(poll, 0, "v9")
    assert selectors.poll_results(poll=poll).scale.median == 9.0  # 0 2 9 9 10: the middle one


@pytest.mark.parametrize("value", [0, 6, 2.5, True, "3", None])
def test_a_value_off_the_scale_is_refused_with_its_range(value):
    poll = make_scale()
    with pytest.raises(services.InvalidValue, match="from 1 to 5"):
        services.ballot_choice_ids(poll=poll, value=value)


def test_a_vote_of_the_wrong_kind_is_refused():
    poll, _ = services.poll_create(question="Q?", choices=["A", "B"])
    with pytest.raises(services.InvalidValue, match="not a rating scale"):
        services.ballot_choice_ids(poll=selectors.poll_get(slug=poll.slug), value=1)
    with pytest.raises(services.InvalidValue, match="send a 'value' from 1 to 5"):
        services.ballot_choice_ids(poll=make_scale(), choices=[1])
