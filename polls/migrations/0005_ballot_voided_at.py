"""Ballots the owner voids stay in the record, marked: `voided_at` (NULL for a counted ballot) and
why. Both columns are added without rewriting the table: a NULL column and a constant default are
metadata-only in PostgreSQL (11+), so this is quick on a large ballot table. No index: every count
reads a poll's ballots through (poll, …) indexes and filters `voided_at IS NULL` on the rows, and an
index on it would be one more write per vote for a column that is almost always NULL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("polls", "0004_ballot_time_brin")]

    operations = [
        migrations.AddField(
            model_name="ballot",
            name="voided_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="ballot",
            name="void_reason",
            field=models.CharField(blank=True, db_default="", max_length=200),
        ),
    ]
