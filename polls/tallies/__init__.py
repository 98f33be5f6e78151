"""Tallies: per-choice counts, total and version of each poll, cached in Redis.

PostgreSQL (the ballots) is the record; Redis holds a tally per poll so that reading results costs
one `HGETALL` instead of an aggregate over every ballot. Without Redis (embedded mode, or Redis
down) tallies are computed from the record. Three jobs, one module each:

- `counts`: reading a tally, counting a committed ballot in it, rebuilding a missing one;
- `changes`: the queue of polls whose results changed, which the broadcaster reads;
- `reconcile`: bringing cached tallies back to the record, for the polls that took ballots since
  the last run (and those marked stale), while votes keep flowing.

`version` grows with every counted ballot and never goes back: it starts as the number of ballots,
each counted ballot adds one, and a repair moves it forward by the size of the correction (at
least one), so viewers that ignore older pushes still take the repaired one.

The Redis keys are named in `keys`.
"""
