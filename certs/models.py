"""Certificates Mailgate gets over ACME (RFC 8555): the account it holds at each CA, every
certificate a host presents, and the history of each certificate's issuances."""

from django.db import models
from django.utils import timezone

from certs.choices import Outcome, Purpose, Trigger
from gateway.fields import EncryptedTextField
from hosts.models import Host


class AcmeAccount(models.Model):
    """Mailgate's account at one ACME server (its directory URL); the key signs every request."""

    directory = models.URLField(max_length=500, unique=True)
    key = EncryptedTextField(help_text="The account's private key (PEM). Stored encrypted.")
    uri = models.URLField("account URL", max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ACME account"

    def __str__(self):
        return f"ACME account at {self.directory}"


class Certificate(models.Model):
    """A certificate one host presents: its directory name (the first name) and every name it
    covers, as derived from the models (``certs.names``)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="certificates")
    purpose = models.CharField(max_length=10, choices=Purpose)
    name = models.CharField(max_length=253, help_text="The first name; the folder it lives in.")
    names = models.JSONField(default=list, help_text="Every name the certificate covers.")
    force_renewal = models.BooleanField(
        default=False, help_text="Renew at the next run, however long the certificate has left."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host", "purpose", "name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="certificate_unique_name"),
        ]

    def __str__(self):
        return f"{self.name} on {self.host}"

    @property
    def current(self) -> "Issuance | None":
        """The newest certificate that was issued: what the host presents."""
        return self.issuances.filter(outcome=Outcome.ISSUED).order_by("-started_at").first()

    @property
    def latest(self) -> "Issuance | None":
        """The newest attempt, successful or not."""
        return self.issuances.order_by("-started_at", "-pk").first()


class Issuance(models.Model):
    """One attempt to get a certificate: its outcome, and the certificate and key it got."""

    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="issuances")
    trigger = models.CharField(max_length=10, choices=Trigger, default=Trigger.SCHEDULE)
    names = models.JSONField(default=list)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome, default=Outcome.RUNNING)
    message = models.TextField(blank=True)
    serial = models.CharField(max_length=64, blank=True, help_text="In hexadecimal.")
    issuer = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    fullchain = models.TextField(blank=True, help_text="The certificate, then its chain (PEM).")
    private_key = EncryptedTextField(blank=True, help_text="PEM. Stored encrypted.")

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["certificate", "-started_at"], name="issuance_latest")]

    def __str__(self):
        return f"{self.certificate.name}: {self.outcome} at {self.started_at:%Y-%m-%d %H:%M}"
