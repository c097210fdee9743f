"""DNS data Mailgate owns: the DKIM keys that sign a domain's mail."""

import re

from django.core.exceptions import ValidationError
from django.db import models

from gateway.fields import EncryptedTextField
from gateway.models import Domain
from gateway.scoping import DomainScopedQuerySet

_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_selector(value: str) -> None:
    if not _SELECTOR.match(value):
        raise ValidationError(
            "A DKIM selector is one DNS label: lowercase letters, digits and -.",
            code="invalid_selector",
        )


class DkimKey(models.Model):
    """A domain's DKIM signing key under one selector; rotation keeps two selectors."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63, default="dkim", validators=[validate_selector])
    private_key = EncryptedTextField(help_text="PEM, RSA-2048. Stored encrypted.")
    public_key = models.TextField(help_text="Base64 DER of the public key, as in the p= tag.")
    active = models.BooleanField(default=False, help_text="Signs outgoing mail.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainScopedQuerySet.as_manager()

    class Meta:
        ordering = ["domain", "selector"]
        verbose_name = "DKIM key"
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_key_unique_selector")
        ]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain.name}"
