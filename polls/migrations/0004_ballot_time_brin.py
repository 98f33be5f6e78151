"""A BRIN index on the ballots' time: "which polls took a ballot since T" (the reconciler, the
per-minute counts) reads only the recent block ranges, so its cost follows recent votes, not the
number of polls or of ballots ever cast. BRIN, not a B-tree: ballots are appended in time order,
and a BRIN index costs almost nothing per insert, where a B-tree would be one more write per vote.

PostgreSQL only (SQLite has no BRIN; embedded mode has no reconciler), so it is not in the model's
Meta: `makemigrations` would write it for every database.
"""

from django.db import migrations

INDEX = "ballot_time_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON polls_ballot USING brin (submitted_at) WITH (pages_per_range = 16)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("polls", "0003_drop_redundant_ballot_poll_index")]

    operations = [migrations.RunPython(create, drop)]
