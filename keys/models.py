"""OpenPGP: mailboxes' public keys (published by Web Key Directory), the certification
authorities Mailgate trusts (ProtonCA), correspondents' keys and their certifications' expiry."""

import base64
import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from gateway.models import Mailbox
from gateway.scoping import DomainScopedQuerySet, ScopedQuerySet
from gateway.validators import reject_control_characters
from keys import wkd
from keys.choices import AlertKind, Validity, WkdStatus

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


def validate_fingerprint(value: str) -> None:
    if not _FINGERPRINT.match(value):
        raise ValidationError(
            "A fingerprint is 40 (v4) or 64 (v6) hexadecimal digits without spaces.",
            code="invalid_fingerprint",
        )


class OpenPGPKeyQuerySet(DomainScopedQuerySet):
    """Domain managers manage their domains' keys; a mailbox owner publishes their own."""

    domain_lookup = "mailbox__domain"

    def write_scope(self, user) -> models.Q:
        return super().write_scope(user) | models.Q(mailbox__owner=user)


class OpenPGPKey(models.Model):
    """A mailbox's public OpenPGP key, published by WKD with the mailbox's user ID only."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = ("published",)

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="openpgp_keys")
    fingerprint = models.CharField(max_length=64, validators=[validate_fingerprint], editable=False)
    user_id = models.TextField(
        blank=True,
        editable=False,
        validators=[reject_control_characters],
        help_text="The user ID that is published; the key's other user IDs are left out.",
    )
    public_key = models.TextField(
        editable=False, help_text="The ASCII-armored public key, with the published user ID only."
    )
    # The same key in binary, as WKD serves it, and Autocrypt's minimal form of it.
    wkd_key = models.BinaryField(blank=True, default=b"", editable=False)
    autocrypt_key = models.BinaryField(blank=True, default=b"", editable=False)
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the key (or its last encryption subkey) expires.",
    )
    published = models.BooleanField(
        default=True,
        help_text="Serve this key by WKD (the gateway serves it after its next deployment).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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
        # The key itself is read and checked by gpg (keys.services), never typed in.
        self.fingerprint = (self.fingerprint or "").replace(" ", "").upper()

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def wkd_status(self) -> str:
        if self.expired:
            return WkdStatus.EXPIRED
        mailbox = self.mailbox
        if self.published and self.wkd_key and mailbox.enabled and mailbox.domain.enabled:
            return WkdStatus.PUBLISHED
        return WkdStatus.NOT_PUBLISHED

    def get_wkd_status_display(self) -> str:
        return WkdStatus(self.wkd_status).label

    @property
    def wkd_url(self) -> str:
        """The advanced method's URL (``openpgpkey.<domain>``), the one gpg tries first."""
        return wkd.urls(self.mailbox.address)[0]

    @property
    def wkd_direct_url(self) -> str:
        return wkd.urls(self.mailbox.address)[1]

    @property
    def autocrypt_header(self) -> str:
        """The ``Autocrypt:`` header value (Autocrypt Level 1), to paste into a mail client."""
        keydata = base64.b64encode(bytes(self.autocrypt_key)).decode("ascii")
        return f"addr={self.mailbox.address}; prefer-encrypt=mutual; keydata={keydata}"


class TrustAnchor(models.Model):
    """A certification authority whose certifications make contact keys valid (ProtonCA)."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = ("name",)

    name = models.CharField(
        max_length=100, validators=[reject_control_characters], help_text="e.g. ProtonCA."
    )
    fingerprint = models.CharField(
        max_length=64, unique=True, validators=[validate_fingerprint], editable=False
    )
    user_id = models.TextField(blank=True, editable=False)
    public_key = models.TextField(editable=False, help_text="The ASCII-armored public key.")
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()  # the owner's alone

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.fingerprint})"


class ContactKey(models.Model):
    """A correspondent's public key (a Proton user's, say) in Mailgate's keyring."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = ("label",)

    label = models.CharField(
        max_length=200,
        blank=True,
        validators=[reject_control_characters],
        help_text="Whose key this is, for your own reference.",
    )
    fingerprint = models.CharField(
        max_length=64, unique=True, validators=[validate_fingerprint], editable=False
    )
    user_ids = models.JSONField(default=list, blank=True, editable=False)
    public_key = models.TextField(editable=False, help_text="The ASCII-armored public key.")
    validity = models.CharField(
        max_length=1, choices=Validity.choices, default=Validity.NEW, editable=False
    )
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()  # the owner's alone

    class Meta:
        ordering = ["label", "fingerprint"]

    def __str__(self):
        return self.label or (self.user_ids[0] if self.user_ids else self.fingerprint)

    @property
    def addresses(self) -> str:
        return ", ".join(self.user_ids)


class CertificationAlert(models.Model):
    """A trust anchor's certification of a contact key that has expired or expires soon."""

    contact_key = models.ForeignKey(ContactKey, on_delete=models.CASCADE, related_name="alerts")
    trust_anchor = models.ForeignKey(TrustAnchor, on_delete=models.CASCADE, related_name="alerts")
    user_id = models.TextField(help_text="The certified user ID.")
    kind = models.CharField(max_length=10, choices=AlertKind.choices)
    expires_at = models.DateTimeField(help_text="When the last certification expires or expired.")
    checked_at = models.DateTimeField()

    objects = ScopedQuerySet.as_manager()  # the owner's alone

    class Meta:
        ordering = ["expires_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact_key", "trust_anchor", "user_id"], name="certification_alert_unique"
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.user_id} by {self.trust_anchor.name}"
