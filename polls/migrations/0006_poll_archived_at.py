"""Archiving idle polls: `Poll.archived_at`, and `Poll.active_at`, what idleness is measured from.

`active_at` is added with the database default now() (a constant for the rows already there, so
metadata-only in PostgreSQL 11+), then set to each existing poll's creation time: the archiving task
then looks at old polls from their start, and finds their last ballot itself. The partial index
holds only the polls not archived, the only ones the task ever looks for.
"""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def active_since_created(apps, schema_editor):
    apps.get_model("polls", "Poll").objects.update(active_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("polls", "0005_ballot_voided_at")]

    operations = [
        migrations.AddField(
            model_name="poll",
            name="active_at",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(),
                default=django.utils.timezone.now,
                editable=False,
            ),
        ),
        migrations.AddField(
            model_name="poll",
            name="archived_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(active_since_created, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="poll",
            index=models.Index(
                condition=models.Q(("archived_at__isnull", True)),
                fields=["active_at"],
                name="poll_unarchived_active_idx",
            ),
        ),
    ]
