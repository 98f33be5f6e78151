"""After the load: was every acknowledged vote kept exactly once, and do the tallies say so?

Reads the votes Locust saw acknowledged (acks-*.tsv: slug, voter key, form|api), looks each one up
in PostgreSQL, and compares every poll's results as the site shows them (the JSON API) with
counts taken from the ballots that count (not void: an owner may void a burst): every choice's (a
rating's values are its choices), and a word cloud's terms, counted here by the rule DESIGN.md states
("Question kinds"). Data access only: no code of the app is imported.
"""

import time
import unicodedata
from collections import Counter
from pathlib import Path

import psycopg

from loadtest.site import Site, SiteError

SAMPLE = 5  # mismatches quoted in the report


def read_acks(run_dir: Path) -> list[tuple[str, str, str]]:
    acks = []
    for path in sorted(run_dir.glob("acks-*.tsv")):
        for line in path.read_text().splitlines():
            slug, voter_key, via = line.split("\t")
            acks.append((slug, voter_key, via))
    return acks


def check(
    *,
    database_url: str,
    site: Site,
    run_dir: Path,
    seeded_slugs: list[str],
    created_slugs: list[str] = (),
    settle_seconds: float = 10,
) -> dict:
    """Every acknowledged vote, and the tallies of every poll seeded, created during the run or voted in."""
    acks = read_acks(run_dir)
    pairs = Counter((slug, voter_key) for slug, voter_key, _ in acks)
    acknowledged_twice = [pair for pair, n in pairs.items() if n > 1]
    slugs = sorted(set(seeded_slugs) | set(created_slugs) | {slug for slug, _ in pairs})
    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE TEMP TABLE acked (slug text, voter_key text)")
        with connection.cursor().copy("COPY acked (slug, voter_key) FROM STDIN") as copy:
            for pair in pairs:
                copy.write_row(pair)
        kept = connection.execute(
            """
            SELECT a.slug, a.voter_key, count(b.id)
            FROM acked a
            LEFT JOIN polls_poll p ON p.slug = a.slug
            LEFT JOIN polls_ballot b ON b.poll_id = p.id AND b.voter_key = a.voter_key
            GROUP BY a.slug, a.voter_key
            HAVING count(b.id) <> 1
            """
        ).fetchall()
        unacknowledged = connection.execute(
            """
            SELECT count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id
            WHERE p.slug = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM acked a WHERE a.slug = p.slug AND a.voter_key = b.voter_key)
            """,
            [slugs],
        ).fetchone()[0]
        ballots = connection.execute(
            "SELECT count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id WHERE p.slug = ANY(%s)",
            [slugs],
        ).fetchone()[0]
        tallies, settled_after = _compare_tallies(connection, site, slugs, settle_seconds)
        by_kind = connection.execute(
            """
            SELECT p.kind, count(DISTINCT p.id), count(b.id) FROM polls_poll p
            LEFT JOIN polls_ballot b ON b.poll_id = p.id WHERE p.slug = ANY(%s) GROUP BY p.kind ORDER BY p.kind
            """,
            [slugs],
        ).fetchall()

    missing = [row for row in kept if row[2] == 0]
    repeated = [row for row in kept if row[2] > 1]
    report = {
        "acknowledged": len(acks),
        "acknowledged_by": dict(Counter(via for _, _, via in acks)),
        "acknowledged_twice": len(acknowledged_twice),
        "missing": len(missing),
        "repeated": len(repeated),
        "ballots": ballots,
        "unacknowledged_ballots": unacknowledged,
        "polls": len(slugs),
        "by_kind": {kind: {"polls": polls, "ballots": ballots} for kind, polls, ballots in by_kind},
        "tally_mismatches": tallies,
        "tallies_settled_after_seconds": settled_after,
        "samples": {
            "acknowledged_twice": [list(pair) for pair in acknowledged_twice[:SAMPLE]],
            "missing": [list(row[:2]) for row in missing[:SAMPLE]],
            "repeated": [list(row) for row in repeated[:SAMPLE]],
        },
    }
    report["exact"] = not (acknowledged_twice or missing or repeated or tallies)
    return report


def _compare_tallies(connection, site: Site, slugs: list[str], settle_seconds: float) -> tuple[list[dict], float]:
    """Results shown vs the record, per poll; retried for `settle_seconds` in case a repair is under way."""
    started = time.monotonic()
    while True:
        mismatches = [m for slug in slugs if (m := _tally_mismatch(connection, site, slug))]
        waited = time.monotonic() - started
        if not mismatches or waited >= settle_seconds:
            return mismatches, round(waited, 1)
        time.sleep(2)


def _tally_mismatch(connection, site: Site, slug: str) -> dict | None:
    (kind,) = connection.execute("SELECT kind FROM polls_poll WHERE slug = %s", [slug]).fetchone() or ("choice",)
    rows = connection.execute(
        """
        SELECT c.id, count(b.id) FILTER (WHERE b.choice_mask & (1::bigint << c.position) <> 0)
        FROM polls_poll p
        JOIN polls_choice c ON c.poll_id = p.id
        LEFT JOIN polls_ballot b ON b.poll_id = p.id AND b.voided_at IS NULL
        WHERE p.slug = %s
        GROUP BY c.id
        """,
        [slug],
    ).fetchall()
    record_votes = {choice_id: votes for choice_id, votes in rows}
    record_total = connection.execute(
        "SELECT count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id"
        " WHERE p.slug = %s AND b.voided_at IS NULL",
        [slug],
    ).fetchone()[0]
    try:
        shown = site.results(slug)
    except (SiteError, OSError) as error:
        return {"poll": slug, "error": str(error)}
    words_wrong = _words_mismatch(shown.words, _record_terms(connection, slug)) if kind == "words" else None
    if shown.total == record_total and shown.votes == record_votes and not words_wrong:
        return None
    return {
        "poll": slug,
        "shown_total": shown.total,
        "record_total": record_total,
        "shown_votes": shown.votes,
        "record_votes": record_votes,
        **({"words": words_wrong} if words_wrong else {}),
    }


def normalised(term: str) -> str:
    """How a word cloud counts a term (DESIGN.md, "Question kinds"): NFKC, case-folded, trimmed, inner
    whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", term).casefold().split())


def _record_terms(connection, slug: str) -> Counter:
    """A word cloud's terms in the ballots that count: normalised term -> ballots naming it."""
    rows = connection.execute(
        """
        SELECT term, count(*) FROM polls_ballot b JOIN polls_poll p ON p.id = b.poll_id,
               unnest(string_to_array(b.terms, E'\\n')) term
        WHERE p.slug = %s AND b.voided_at IS NULL AND b.terms <> ''
        GROUP BY term
        """,
        [slug],
    ).fetchall()
    counted: Counter = Counter()
    for spelling, ballots in rows:
        counted[normalised(spelling)] += ballots
    return counted


def _words_mismatch(shown: list[tuple[str, int]] | None, record: Counter, shown_at_most: int = 100) -> str | None:
    """What is wrong with the cloud shown, or None: each term shown must have its record count, and the
    terms shown must be the most frequent (ties at the cut may go either way), most frequent first."""
    if shown is None:
        return "no words in the results"
    for text, count in shown:
        if record[normalised(text)] != count:
            return f"{text!r} shown {count}, the record has {record[normalised(text)]}"
    if [count for _, count in shown] != sorted((count for _, count in shown), reverse=True):
        return "not most frequent first"
    if len(shown) != min(shown_at_most, len(record)):
        return f"{len(shown)} terms shown of {len(record)} counted"
    left_out = [count for term, count in record.items() if term not in {normalised(text) for text, _ in shown}]
    if shown and left_out and max(left_out) > shown[-1][1]:
        return f"a term counted {max(left_out)} times is left out while one of {shown[-1][1]} is shown"
    return None
