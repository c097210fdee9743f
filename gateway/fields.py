"""Model fields for secrets: encrypted in the database, plaintext only in Python."""

from django.db import models

from gateway import crypto


class EncryptedTextField(models.TextField):
    """A secret stored as a Fernet token; the empty string stands for "not set"."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return crypto.encrypt(value)

    def formfield(self, **kwargs):
        from gateway.forms import SecretField

        return super().formfield(**{"form_class": SecretField, **kwargs})
