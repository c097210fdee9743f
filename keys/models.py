"""OpenPGP public keys of mailboxes, published by Web Key Directory."""

import re

from django.core.exceptions import ValidationError
from django.db import models

from gateway.models import Mailbox
from gateway.scoping import DomainScopedQuerySet

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


def validate_fingerprint(value: str) -> None:
    if not _FINGERPRINT.match(value):
        raise ValidationError(
            "A fingerprint is 40 (v4) or 64 (v6) hexadecimal digits without spaces.",
            code="invalid_fingerprint",
        )


class OpenPGPKeyQuerySet(DomainScopedQuerySet):
    domain_lookup = "mailbox__domain"

    def read_scope(self, user) -> models.Q:
        return self.write_scope(user) | models.Q(mailbox__owner=user)


class OpenPGPKey(models.Model):
    """A mailbox's public OpenPGP key."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="openpgp_keys")
    fingerprint = models.CharField(max_length=64, validators=[validate_fingerprint])
    public_key = models.TextField(help_text="The ASCII-armored public key.")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OpenPGPKeyQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox", "-created_at"]
        verbose_name = "OpenPGP key"
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "fingerprint"], name="openpgp_key_unique")
        ]

    def __str__(self):
        return f"{self.fingerprint} ({self.mailbox})"

    def clean(self):
        self.fingerprint = (self.fingerprint or "").replace(" ", "").upper()
        if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in (self.public_key or ""):
            raise ValidationError({"public_key": "Paste an ASCII-armored public key block."})
