"""DNS data Mailgate owns: DKIM keys, each domain's DNS settings, where its zone is pushed,
and the history of live checks."""

import base64
import binascii
import ipaddress
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from gateway.fields import AddressField, DomainNameListField, EncryptedTextField
from gateway.models import Domain
from gateway.scoping import DomainScopedQuerySet
from gateway.validators import (
    reject_control_characters,
    validate_port,
)
from hosts.validators import validate_pem_certificate
from zones.choices import (
    CheckKind,
    CheckStatus,
    CheckTrigger,
    DmarcPolicy,
    MtaStsMode,
    PushKind,
    TsigAlgorithm,
)
from zones.tlsa import spki_sha256

_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SPF_TERM = re.compile(
    r"^[+?~-]?(include:|exists:|a:|mx:|a/|mx/|ip4:|ip6:|a$|mx$)[A-Za-z0-9._:/%{}+=-]*$"
)
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9.])?$")
_PROVIDER = re.compile(r"^[a-z0-9_]{2,40}$")


def validate_selector(value: str) -> None:
    if not _SELECTOR.match(value):
        raise ValidationError(
            "A DKIM selector is one DNS label: lowercase letters, digits and -.",
            code="invalid_selector",
        )


def validate_spf_terms(value: str) -> None:
    reject_control_characters(value)
    for term in value.split():
        if not _SPF_TERM.match(term) or term.lower().endswith("all"):
            raise ValidationError(
                "%(term)s is not an SPF mechanism Mailgate adds (include:, a:, mx:, ip4:, ip6:, "
                "exists:; the final ~all is Mailgate's).",
                code="invalid_spf",
                params={"term": term},
            )


def validate_name_list(value) -> None:
    """The list's shape; ``DomainNameListField`` already checked (and stored) each name."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give a list of host names.", code="invalid_names")


def validate_hex_digest(value: str) -> None:
    if not _HEX_DIGEST.match(value):
        raise ValidationError(
            "A SHA-256 digest is 64 lowercase hexadecimal digits.", code="invalid_digest"
        )


def validate_base64(value: str) -> None:
    reject_control_characters(value)
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
        raise ValidationError("This is not base64.", code="invalid_base64") from None


def validate_key_name(value: str) -> None:
    if not _KEY_NAME.match(value):
        raise ValidationError(
            "A TSIG key name is a DNS name such as mailgate or mailgate-key.example.",
            code="invalid_key_name",
        )


def validate_provider(value: str) -> None:
    from zones.providers import provider_exists

    if not _PROVIDER.match(value) or not provider_exists(value):
        raise ValidationError(
            "%(value)s is not a dns-lexicon provider (e.g. cloudflare, hetzner, gandi).",
            code="invalid_provider",
            params={"value": value},
        )


def validate_ip_address(value: str) -> None:
    reject_control_characters(value)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(
            "Give the server's IP address (e.g. 192.0.2.53), not a name: updates must not "
            "depend on DNS.",
            code="invalid_address",
        ) from None


class DkimKeyQuerySet(DomainScopedQuerySet):
    def published(self):
        return self.filter(retired_at__isnull=True)


class DkimKey(models.Model):
    """A domain's DKIM signing key under one selector; rotation keeps two selectors."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63, default="dkim", validators=[validate_selector])
    private_key = EncryptedTextField(help_text="PEM, RSA-2048. Stored encrypted.")
    public_key = models.TextField(
        validators=[validate_base64],
        help_text="Base64 DER of the public key, as in the p= tag.",
    )
    active = models.BooleanField(default=False, help_text="Signs outgoing mail.")
    retired_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the key was retired: its record is then removed from DNS.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DkimKeyQuerySet.as_manager()

    class Meta:
        ordering = ["domain", "created_at", "selector"]
        verbose_name = "DKIM key"
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_key_unique_selector"),
            # Signing switches from one key to the next in one step, never to two keys at once.
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(active=True),
                name="dkim_key_one_active_per_domain",
            ),
        ]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain.name}"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name}"

    @property
    def state(self) -> str:
        if self.retired_at:
            return "retired"
        return "active" if self.active else "published"

    def clean(self):
        if self.active and self.retired_at:
            raise ValidationError({"active": "A retired key cannot sign."})


class ZoneSettings(models.Model):
    """How a domain's DNS records are written: TTL, DMARC, MTA-STS, SPF additions, TLSA."""

    EDITABLE_FIELDS = (
        "ttl",
        "nameservers",
        "dmarc_policy",
        "dmarc_rua",
        "dmarc_ruf",
        "dmarc_strict_alignment",
        "tlsrpt_rua",
        "mta_sts_mode",
        "mta_sts_max_age",
        "spf_extra",
        "tlsa_enabled",
        "tlsa_certificate",
        "tlsa_digest",
    )

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="zone_settings")
    ttl = models.PositiveIntegerField(
        "TTL",
        default=3600,
        validators=[MinValueValidator(60), MaxValueValidator(604800)],
        help_text="Seconds resolvers keep the records; lower it a day before a planned change.",
    )
    nameservers = DomainNameListField(
        "name servers",
        default=list,
        blank=True,
        validators=[validate_name_list],
        help_text="The zone's NS names, one per line, for the zone file's NS records "
        "(e.g. ns1.provider.example). Empty: the mail host stands in, marked for replacement.",
    )
    dmarc_policy = models.CharField(
        "DMARC policy",
        max_length=10,
        choices=DmarcPolicy,
        default=DmarcPolicy.QUARANTINE,
        help_text="What receivers do with mail that fails DMARC. Start with quarantine, move to "
        "reject once the reports show only your own servers.",
    )
    dmarc_rua = AddressField(
        "DMARC aggregate reports to",
        max_length=254,
        blank=True,
        help_text="Empty: postmaster@<domain>. An address in another domain needs that domain's "
        "report authorization record (Mailgate lists it).",
    )
    dmarc_ruf = AddressField(
        "DMARC failure reports to",
        max_length=254,
        blank=True,
        help_text="Optional; few receivers send failure reports.",
    )
    dmarc_strict_alignment = models.BooleanField(
        "strict DMARC alignment",
        default=True,
        help_text="adkim=s; aspf=s: only this exact domain aligns, not its subdomains (as Mailu).",
    )
    tlsrpt_rua = AddressField(
        "TLS reports to",
        max_length=254,
        blank=True,
        help_text="Where senders report TLS failures (TLS-RPT). Empty: the DMARC report address.",
    )
    mta_sts_mode = models.CharField(
        "MTA-STS mode",
        max_length=10,
        choices=MtaStsMode,
        default=MtaStsMode.TESTING,
        help_text="Start with testing; enforce once the TLS reports are clean. The policy is "
        "served by the gateway at https://mta-sts.<domain>/.well-known/mta-sts.txt, whose "
        "certificate must cover that name.",
    )
    mta_sts_max_age = models.PositiveIntegerField(
        "MTA-STS max age",
        default=604800,
        validators=[MinValueValidator(86400), MaxValueValidator(31557600)],
        help_text="Seconds senders cache the policy (one week; at most a year).",
    )
    spf_extra = models.CharField(
        "more SPF senders",
        max_length=400,
        blank=True,
        validators=[validate_spf_terms],
        help_text="Other services that send as this domain, e.g. include:_spf.protonmail.ch for "
        "mail relayed through Proton, separated by spaces.",
    )
    tlsa_enabled = models.BooleanField(
        "publish TLSA (DANE)",
        default=False,
        help_text="Publish _25._tcp.<mail host> TLSA 3 1 1 for the mail host's certificate "
        "key. Only with a DNSSEC-signed zone, and only if renewals keep the key "
        "(certbot --reuse-key): a new key without a new record breaks delivery.",
    )
    tlsa_certificate = models.TextField(
        "TLSA certificate",
        blank=True,
        validators=[validate_pem_certificate],
        help_text="The mail host's certificate (PEM); Mailgate computes the SHA-256 of its "
        "public key. Or give the digest below.",
    )
    tlsa_digest = models.CharField(
        "TLSA digest",
        max_length=64,
        blank=True,
        validators=[validate_hex_digest],
        help_text="SHA-256 of the certificate's public key (SubjectPublicKeyInfo), in hex.",
    )

    objects = DomainScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "DNS settings"
        verbose_name_plural = "DNS settings"

    def __str__(self):
        return f"DNS settings of {self.domain.name}"

    def clean(self):
        self.tlsa_digest = (self.tlsa_digest or "").strip().lower()
        if self.tlsa_certificate:
            # A pasted certificate wins over a digest typed before: it is the newer fact.
            try:
                self.tlsa_digest = spki_sha256(self.tlsa_certificate)
            except ValueError:
                return  # the certificate's own validator says what is wrong
        if self.tlsa_enabled and not self.tlsa_digest:
            raise ValidationError(
                {"tlsa_certificate": "Paste the certificate or its digest to publish TLSA."}
            )


class PushTarget(models.Model):
    """Where a domain's zone is updated: an authoritative server (RFC 2136) or a provider."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "kind",
        "server",
        "port",
        "tsig_key_name",
        "tsig_algorithm",
        "tsig_secret",
        "provider",
        "provider_username",
        "provider_token",
    )

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="push_target")
    kind = models.CharField(max_length=10, choices=PushKind, default=PushKind.RFC2136)
    server = models.CharField(
        max_length=45,
        blank=True,
        validators=[validate_ip_address],
        help_text="RFC 2136: the primary server's IP address.",
    )
    port = models.PositiveIntegerField(default=53, validators=[validate_port])
    tsig_key_name = models.CharField(
        "TSIG key name",
        max_length=253,
        blank=True,
        validators=[validate_key_name],
        help_text="The key's name as in the server's configuration (key \"NAME\" { … }).",
    )
    tsig_algorithm = models.CharField(
        "TSIG algorithm", max_length=12, choices=TsigAlgorithm, default=TsigAlgorithm.HMAC_SHA256
    )
    tsig_secret = EncryptedTextField(
        "TSIG secret",
        blank=True,
        validators=[validate_base64],
        help_text="The key's base64 secret (tsig-keygen prints it). Stored encrypted.",
    )
    provider = models.CharField(
        max_length=40,
        blank=True,
        validators=[validate_provider],
        help_text="Provider API: the dns-lexicon provider name, e.g. cloudflare.",
    )
    provider_username = models.CharField(
        "provider user name",
        max_length=200,
        blank=True,
        validators=[reject_control_characters],
        help_text="Only for providers that want one (lexicon's auth_username).",
    )
    provider_token = EncryptedTextField(
        "provider token",
        blank=True,
        validators=[reject_control_characters],
        help_text="The API token (lexicon's auth_token), e.g. a Cloudflare token with "
        "Zone → DNS → Edit. Stored encrypted.",
    )
    last_pushed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = DomainScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "DNS push target"

    def __str__(self):
        return f"push of {self.domain.name} via {self.get_kind_display()}"

    @property
    def zone(self) -> str:
        return self.domain.name

    def clean(self):
        required = {
            PushKind.RFC2136: ("server", "tsig_key_name", "tsig_secret"),
            PushKind.PROVIDER: ("provider", "provider_token"),
        }[self.kind]
        missing = {
            name: "Required for this kind of push." for name in required if not getattr(self, name)
        }
        if missing:
            raise ValidationError(missing)


class CheckRun(models.Model):
    """One live check of a domain's records, with its results."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_checks")
    trigger = models.CharField(max_length=10, choices=CheckTrigger, default=CheckTrigger.UI)
    resolver = models.CharField(max_length=200, help_text="The resolver the check asked.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0)
    dnssec = models.CharField(
        "DNSSEC", max_length=20, blank=True, help_text="validated, signed, unsigned or bogus."
    )

    objects = DomainScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = "DNS check"
        indexes = [models.Index(fields=["domain", "-started_at"], name="dns_check_latest")]

    def __str__(self):
        return f"DNS check of {self.domain.name} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def ok(self) -> bool:
        return self.failed == 0


class CheckResultQuerySet(DomainScopedQuerySet):
    domain_lookup = "run__domain"


class CheckResult(models.Model):
    """One finding of a check: a record (or the reverse DNS, HELO, DNSSEC) and what differs."""

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=10, choices=CheckKind, default=CheckKind.RECORD)
    name = models.CharField(max_length=255)
    rtype = models.CharField("type", max_length=10, blank=True)
    purpose = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=5, choices=CheckStatus)
    expected = models.JSONField(default=list, blank=True)
    found = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    fix = models.TextField(blank=True)

    objects = CheckResultQuerySet.as_manager()

    class Meta:
        ordering = ["run", "position"]

    def __str__(self):
        return f"{self.name} {self.rtype}: {self.status}"
