"""The change log: django-auditlog records every create, update and delete with its actor.

django-auditlog was chosen over django-simple-history because it keeps one table of JSON
before/after diffs for every model (simple-history adds a full copy of every table, which would
duplicate each encrypted secret) and it can censor fields through one masking hook.
"""

from datetime import datetime

from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import post_log
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Max
from django.db.models.signals import pre_save

from gateway.fields import EncryptedTextField

# Fields that are secrets without being encrypted: hashes and digests of credentials.
CENSORED_FIELDS = {"password_hash", "digest"}


def censor(value: str) -> str:
    """auditlog's mask hook: say whether a secret was set, never what it was."""
    return "(set)" if value not in ("", "None") else "(empty)"


def secret_fields(model: type[models.Model]) -> list[str]:
    return [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField) or field.name in CENSORED_FIELDS
    ]


def register(*models_: type[models.Model]) -> None:
    for model in models_:
        if not auditlog.contains(model):
            auditlog.register(model, mask_fields=secret_fields(model), m2m_fields=m2m_of(model))


def m2m_of(model: type[models.Model]) -> set[str]:
    return {field.name for field in model._meta.many_to_many}


def register_models() -> None:
    from gateway import models as gateway_models

    register(gateway_models.Domain, gateway_models.Mailbox, gateway_models.Alias)
    register(gateway_models.ApiToken, gateway_models.AppPassword)


def last_changes(model: type[models.Model], pks: list[int]) -> dict[int, datetime | None]:
    """When each of the rows ``pks`` last changed, from the change log (None: not since the
    log began)."""
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model), object_id__in=pks
    )
    last = dict(
        entries.values("object_id").annotate(at=Max("timestamp")).values_list("object_id", "at")
    )
    return {pk: last.get(pk) for pk in pks}


def log_created(rows: list[models.Model]) -> None:
    """Record rows made with ``bulk_create`` in the change log as auditlog records each save
    (the same diff, secrets masked, the same actor), in one insert, and say so once per model
    (``post_log``, as a save does), so that what follows a change follows these too."""
    if not rows:
        return
    model = type(rows[0])
    entries = [
        LogEntry(
            content_type=ContentType.objects.get_for_model(model),
            object_pk=str(row.pk),
            object_id=row.pk,
            object_repr=str(row),
            action=LogEntry.Action.CREATE,
            changes=model_instance_diff(
                None, row, use_json_for_changes=settings.AUDITLOG_STORE_JSON_CHANGES
            ),
        )
        for row in rows
    ]
    for entry in entries:  # what auditlog's set_actor connects (the actor) sees each entry
        pre_save.send(LogEntry, instance=entry, raw=False, using=None, update_fields=None)
    LogEntry.objects.bulk_create(entries)
    post_log.send(model, instance=rows[-1], action=LogEntry.Action.CREATE, log_created=True)
