"""Event.platform: events the platform emits itself, kept out of activity. Events already
stored in the internal source (where events_emit puts them) are marked."""

from django.db import migrations, models


def mark_emitted(apps, schema_editor):
    Event = apps.get_model("events", "Event")
    Event.objects.filter(source__bridge="internal").update(platform=True)


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial"), ("sources", "0002_alter_eventsource_options")]

    operations = [
        migrations.AddField(
            model_name="event",
            name="platform",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(mark_emitted, migrations.RunPython.noop),
    ]
