"""Model fields that store a value in one form only: secrets encrypted in the database
(plaintext only in Python), and addresses and domain names in the form Postfix, Dovecot and
Mailu compare them (``gateway.validators``)."""

from collections.abc import Callable

from django.db import models

from gateway import crypto
from gateway.validators import to_address, to_ascii_domain, to_host, to_local_part


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


class CanonicalCharField(models.CharField):
    """Text brought to its one stored form by ``canonical`` (which refuses what has none) when
    the model is cleaned. Forms and the API both clean the model, so both store the same value;
    lookups are left alone, so a filter with any text just finds nothing."""

    canonical: Callable[[str], str]

    def clean(self, value, model_instance):
        value = self.to_python(value)
        return super().clean(type(self).canonical(value) if value else value, model_instance)


class DomainNameField(CanonicalCharField):
    """A domain name: lowercase A-labels, no trailing dot."""

    canonical = staticmethod(to_ascii_domain)


class LocalPartField(CanonicalCharField):
    """The part of an address before the @, lowercase."""

    canonical = staticmethod(to_local_part)


class AddressField(CanonicalCharField):
    """A mail address, ``local@domain`` with each part in its stored form."""

    canonical = staticmethod(to_address)


class HostField(CanonicalCharField):
    """An IP address or a domain name."""

    canonical = staticmethod(to_host)


class CanonicalListField(models.JSONField):
    """A list of strings, each brought to its one stored form by ``canonical``; anything but a
    list of strings is left to the field's validators to refuse."""

    canonical: Callable[[str], str]

    def clean(self, value, model_instance):
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = [type(self).canonical(item) for item in value]
        return super().clean(value, model_instance)


class AddressListField(CanonicalListField):
    canonical = staticmethod(to_address)


class DomainNameListField(CanonicalListField):
    canonical = staticmethod(to_ascii_domain)
