"""The Redis keys of the tallies, in one place because the vote's Lua script touches most of them.

On the poll's shard (`polls.redis_client.redis_for_poll`), since the vote's script touches them together:
- `tally:<poll id>`: hash of `c:<choice id>` counts, `total` and `version`;
- `tally:words:<poll id>`: a word cloud's sorted set, normalised term -> ballots naming it;
- `tally:spellings:<poll id>`: a word cloud's hash of `n:<term>\t<spelling>` counts and `d:<term>`,
  the spelling shown (its most common), kept by the same script that counts the term;
- `tally:changed`: set of poll ids whose results changed since the broadcaster last looked; one per
  shard, holding that shard's polls (the broadcaster empties every shard's);
- `tally:stale`: set of poll ids whose cached tally may miss a ballot: the reconciler looks at them
  whatever else it looks at; one per shard, as `tally:changed`;
- `tally:window:<poll id>`: while the reconciler looks, the ids of the ballots counted since it began.

On the home server (`get_redis`):
- `tally:reconciling`: the lock that keeps reconcile runs one at a time;
- `tally:reconciled_until`: the time (ISO-8601) before which every ballot's poll has been reconciled.
"""

CHANGED_KEY = "tally:changed"
STALE_KEY = "tally:stale"
RECONCILE_LOCK_KEY = "tally:reconciling"
RECONCILED_UNTIL_KEY = "tally:reconciled_until"


TALLY_KEY_PREFIX = "tally:"  # the poll cache's lookup script builds a tally key from a poll id


def tally_key(poll_id: int) -> str:
    return f"{TALLY_KEY_PREFIX}{poll_id}"


def window_key(poll_id: int) -> str:
    return f"tally:window:{poll_id}"


def words_key(poll_id: int) -> str:
    return f"tally:words:{poll_id}"


def spellings_key(poll_id: int) -> str:
    return f"tally:spellings:{poll_id}"


def poll_tally_keys(poll_id: int) -> list[str]:
    """The keys that hold one poll's tally, in the order the scripts take them: the hash, the word
    cloud's sorted set and its spellings."""
    return [tally_key(poll_id), words_key(poll_id), spellings_key(poll_id)]
