"""The runner's side of the hall's event: how many questions it asks for, which ones its presenter showed,
and what is done with them before the integrity check."""

import json
from dataclasses import replace

import pytest

from loadtest.run import Options, event_wrap_up, parse_args, questions_for, read_shown
from loadtest.site import Answer


def test_the_hall_asks_for_a_question_per_round_of_its_run_and_at_most_50():
    hall = Options()
    # 6 steps of 60 s, each after its ramp (40 s in all), a 10 s settle and up to a round's wait: 820 s, 14 rounds,
    # and one question for the mix ceiling and one for a round begun as the last step ends.
    assert questions_for(hall) == 16
    # A soak: the same users for 30 windows back to back, measured from the first round.
    assert questions_for(replace(hall, steps=[1000] * 30)) == 34
    assert questions_for(replace(hall, steps=[1000] * 60)) == 50
    # Half the think time: rounds of 30 s, twice as many of them.
    assert questions_for(replace(hall, steps=[200], step_seconds=45, wait_scale=0.5, align_to_rounds=False)) == 4
    assert questions_for(replace(hall, wait_scale=0)) == 2  # closed loops: one question open all along, twice


def test_the_questions_shown_are_the_presenters_in_the_order_it_showed_them(tmp_path):
    # The mix ceiling's Locust run, then the steps', each with its own master process.
    (tmp_path / "presenter-11.tsv").write_text("100.000\tnext\tq1\n100.020\topen\tq1\n")
    (tmp_path / "presenter-42.tsv").write_text(
        "160.000\tnext\tq2\n160.020\topen\tq2\n181.000\treveal\tq2\n220.000\tgoto\tq1\n220.010\topen\tq1\n"
    )
    assert read_shown(tmp_path) == ["q1", "q2"]
    assert read_shown(tmp_path / "nothing") == []


class FakeSite:
    """Results hidden for the questions in `hidden` until revealed; records the presenter's actions."""

    def __init__(self, hidden: set[str]) -> None:
        self.hidden = set(hidden)
        self.active = None
        self.actions = []

    def request(self, method: str, path: str) -> Answer:
        slug = path.split("/")[3]
        return Answer(403 if slug in self.hidden else 200, None, "{}")

    def control_event(self, event: dict, action: str, **fields) -> dict:
        assert event["token"] == "secret"
        self.actions.append((action, *fields.values()))
        if action == "goto":
            self.active = fields["question"]
        if action == "reveal":
            self.hidden.discard(self.active)
        return {}


def test_after_the_load_every_question_shown_has_its_results_revealed_and_the_event_ends(tmp_path):
    (tmp_path / "event.json").write_text(json.dumps({"id": "ev", "code": "123456", "token": "secret"}))
    (tmp_path / "presenter-1.tsv").write_text("1.0\tnext\tq1\n2.0\topen\tq1\n3.0\tnext\tq2\n4.0\topen\tq2\n")
    # q1's round ended with its reveal; the run stopped in q2's window; q3 was never shown.
    site = FakeSite(hidden={"q2", "q3"})

    assert event_wrap_up(site, tmp_path) == ["q1", "q2"]
    assert site.actions == [("goto", "q2"), ("reveal",), ("end",)]
    assert site.hidden == {"q3"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--window-seconds", "58"], "must end at least 5 s before the next round"),
        (["--profile", "hall", "--polls", "51"], "has 1 to 50 questions"),
    ],
)
def test_the_hall_refuses_a_window_longer_than_its_rounds_allow_and_more_questions_than_an_event_holds(
    argv, message, capsys
):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
    assert [options.polls for options in parse_args(["--profile", "public", "--polls", "300"])] == [300]
