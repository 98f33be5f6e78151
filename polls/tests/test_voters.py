"""Voter keys: which spellings name one voter."""

import unicodedata

import pytest

from polls.voters import voter_key_normalise


@pytest.mark.parametrize(
    "spelling",
    ["alice", "Alice", " alice ", "ALICE\t", "ａｌｉｃｅ", "\u3000alice"],  # fullwidth letters, ideographic space
)
def test_spellings_of_alice_are_one_key(spelling):
    assert voter_key_normalise(spelling) == "alice"


def test_composed_and_decomposed_spellings_are_one_key():
    composed, decomposed = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    assert composed != decomposed
    assert voter_key_normalise(composed) == voter_key_normalise(decomposed) == "josé"


def test_a_key_of_only_spaces_is_empty_and_inner_spaces_stay():
    assert voter_key_normalise(" \t\u3000 ") == ""
    assert voter_key_normalise(" Ann  Lee ") == "ann  lee"


def test_the_result_is_in_nfkc_and_stable_even_where_case_folding_decomposes():
    for key in ("ǰ", "ΐ", "ﬃ", "Straße", "ＡＢＣ", "İstanbul"):  # folding "ǰ" and "ΐ" leaves them decomposed
        once = voter_key_normalise(key)
        assert unicodedata.is_normalized("NFKC", once), key
        assert voter_key_normalise(once) == once, key
