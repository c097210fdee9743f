"""Workflows on the secrets stored by every app."""

from django.apps import apps
from django.db import transaction

from gateway.fields import EncryptedTextField


def encrypted_fields():
    """Every (model, field) that holds an encrypted secret, across all apps."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


@transaction.atomic
def secrets_rotate() -> int:
    """Re-encrypt every stored secret with the first key of MAILGATE_ENCRYPTION_KEYS and return
    how many values were rewritten. ``update()`` bypasses signals: nothing changes in plaintext,
    so the change log has nothing to record."""
    count = 0
    for model, field in encrypted_fields():
        rows = model.objects.exclude(**{field.name: ""}).values_list("pk", field.name)
        for pk, plaintext in rows.iterator():
            model.objects.filter(pk=pk).update(**{field.name: plaintext})
            count += 1
    return count
