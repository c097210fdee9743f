import json

from django.db import migrations, models


def mark_limited_tokens(apps, schema_editor):
    """A token is limited if it has domains now, or if the change log shows it was given some:
    before this field, a token whose domains were all deleted silently became unlimited."""
    ApiToken = apps.get_model("gateway", "ApiToken")
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("auditlog", "LogEntry")
    database = schema_editor.connection.alias  # the database migrated, not always "default"
    limited = set(
        ApiToken.objects.using(database).filter(domains__isnull=False).values_list("pk", flat=True)
    )
    token_type = (
        ContentType.objects.using(database).filter(app_label="gateway", model="apitoken").first()
    )
    entries = LogEntry.objects.using(database).filter(content_type=token_type) if token_type else []
    for entry in entries:
        changes = (
            entry.changes if isinstance(entry.changes, dict) else json.loads(entry.changes or "{}")
        )
        if "domains" in changes and entry.object_pk.isdigit():
            limited.add(int(entry.object_pk))
    ApiToken.objects.using(database).filter(pk__in=limited).update(limited=True)


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0003_status_items"),
        ("auditlog", "__first__"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="limited",
            field=models.BooleanField(
                default=False,
                editable=False,
                help_text="The token reaches only its domains (none once they are all deleted) and never hosts, relays or deployments.",
            ),
        ),
        migrations.RunPython(mark_limited_tokens, migrations.RunPython.noop),
    ]
