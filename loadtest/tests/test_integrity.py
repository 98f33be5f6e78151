"""The integrity check's view of a word cloud: it counts terms as DESIGN.md says, and knows a cloud shown
wrong when it sees one."""

from collections import Counter

from loadtest.integrity import _words_mismatch, normalised


def test_terms_are_counted_by_their_normalised_form():
    assert normalised("  New   YORK ") == normalised("new york") == normalised("Ｎｅｗ York")


RECORD = Counter({"coffee": 5, "tea": 3, "new york": 3, "rain": 1})


def test_a_cloud_shown_right_passes():
    assert _words_mismatch([("Coffee", 5), ("tea", 3), ("New York", 3), ("rain", 1)], RECORD) is None
    assert _words_mismatch([("coffee", 5), ("tea", 3)], RECORD, shown_at_most=2) is None


def test_a_cloud_shown_wrong_is_caught():
    assert "shown 4" in _words_mismatch([("coffee", 4), ("tea", 3), ("new york", 3), ("rain", 1)], RECORD)
    assert "most frequent first" in _words_mismatch([("tea", 3), ("coffee", 5), ("new york", 3), ("rain", 1)], RECORD)
    assert "3 terms shown of 4" in _words_mismatch([("coffee", 5), ("tea", 3), ("new york", 3)], RECORD)
    assert "left out" in _words_mismatch([("coffee", 5), ("rain", 1)], RECORD, shown_at_most=2)
    assert _words_mismatch(None, RECORD) == "no words in the results"
