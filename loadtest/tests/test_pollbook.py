"""The poll book: attention by rank (the k-th poll draws 1/k of the first's), new polls at the last or a random rank."""

import random
from collections import Counter

from loadtest.pollbook import Poll, PollBook


def poll(number: int) -> Poll:
    return Poll(slug=f"p{number}", choice_ids=[1, 2, 3])


def seeded(count: int, *, new_at_random_rank: bool = False) -> PollBook:
    book = PollBook(new_at_random_rank=new_at_random_rank)
    for number in range(count):
        book.insert(poll(number), rank=number)
    return book


def test_the_kth_poll_draws_about_a_kth_of_the_first_ones_attention():
    random.seed(7)
    book = seeded(2000)
    picks = Counter(book.pick().slug for _ in range(200_000))
    first = picks["p0"]
    for rank in (2, 3, 10):
        assert 0.85 < picks[f"p{rank - 1}"] * rank / first < 1.15
    assert len(picks) > 1000  # the long tail is drawn too


def test_new_polls_of_a_public_site_take_random_ranks_and_get_votes():
    random.seed(11)
    public, hall = seeded(300, new_at_random_rank=True), seeded(300)
    for book in (public, hall):
        for number in range(300, 600):
            book.add(poll(number))

    def share_of_new(book: PollBook) -> float:
        picks = [book.pick().slug for _ in range(20_000)]
        return sum(int(slug[1:]) >= 300 for slug in picks) / len(picks)

    # Half the polls are new: at random ranks they draw about half the votes; at the last ranks (the hall) a tenth.
    assert share_of_new(public) > 0.35
    assert share_of_new(hall) < 0.15
    assert [p.slug for p in hall.ranked[300:]] == [f"p{n}" for n in range(300, 600)]
    assert any(int(p.slug[1:]) >= 300 for p in public.ranked[:30])


def test_a_pick_avoids_the_polls_a_phone_has_answered_and_says_when_none_is_left():
    random.seed(3)
    book = seeded(10)
    answered = {f"p{n}" for n in range(9)}
    assert {book.pick(exclude=answered).slug for _ in range(100)} == {"p9"}
    assert book.pick(exclude=answered | {"p9"}) is None
    assert PollBook().pick() is None

    big = seeded(1000)
    picks = Counter(big.pick(exclude={"p0"}).slug for _ in range(50_000))
    assert "p0" not in picks
    assert 1.7 < picks["p1"] / picks["p3"] < 2.3  # the others keep their weights: 1/2 against 1/4


def test_each_kind_answers_as_its_form_and_the_api_take_it():
    random.seed(3)
    choice = Poll(slug="c", choice_ids=[11, 12, 13], max_choices=2)
    scale = Poll(slug="s", choice_ids=[21, 22, 23, 24, 25], kind="scale", scale_min=1)
    words = Poll(slug="w", choice_ids=[], kind="words", max_words=3)
    assert {name for name, _ in choice.form_fields()} == {"choice"} and set(choice.api_answer()) == {"choices"}
    assert [name for name, _ in scale.form_fields()] == ["choice"]
    assert {scale.api_answer()["value"] for _ in range(200)} == {1, 2, 3, 4, 5}
    for _ in range(200):
        typed = words.pick_words()
        assert 1 <= len(typed) <= 3
        assert len({" ".join(word.casefold().split()) for word in typed}) == len(typed)  # one term once
    spellings = Counter(word for _ in range(500) for word in words.pick_words())
    assert {"coffee", "Coffee", "COFFEE", "  coffee "} <= set(spellings)  # the spellings that count as one
    terms = Counter(" ".join(word.casefold().split()) for word in spellings.elements())
    assert terms["coffee"] > terms["focus"] > terms["jazz"]  # the vocabulary's first words come most often
    assert [name for name, _ in words.form_fields()] and {name for name, _ in words.form_fields()} == {"words"}
