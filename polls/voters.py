"""Voter keys the API's programs choose: when two spellings name one voter."""

import unicodedata


def voter_key_normalise(key: str) -> str:
    """The form a voter key is recorded and compared in: NFKC, case-folded, trimmed.

    So `alice`, `Alice`, ` alice `, fullwidth `ａｌｉｃｅ` and the composed and decomposed spellings of
    `José` are one voter, and one ballot: a program (or a person typing a name) that varies the
    spelling does not vote twice. Case folding can undo NFKC for a few characters, hence NFKC again.
    An empty result means the key was only spaces: callers refuse it.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", key).casefold()).strip()
