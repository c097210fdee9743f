"""The mail directory: domains, their mailboxes and aliases, API tokens, and the status page's
items with their history of colours."""

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator
from django.db import models

from gateway import passwords
from gateway.fields import AddressListField, DomainNameField, LocalPartField
from gateway.scoping import (
    DomainScopedQuerySet,
    ScopedQuerySet,
    limited_by_token,
    managed_domain_ids,
)
from gateway.status import Colour
from gateway.validators import (
    LINE_BREAK,
    are_addresses,
    reject_control_characters,
    reject_control_characters_in_text,
)

AUTOREPLY_BODY_MAX = 10_000
MIB = 1024 * 1024  # the quota's "MB" is Dovecot's "M"
STANDARD_ALIASES = ("abuse", "hostmaster", "noc", "postmaster", "security", "webmaster")


class DomainQuerySet(ScopedQuerySet):
    def read_scope(self, user) -> models.Q:
        return models.Q(pk__in=managed_domain_ids(user))

    def domain_scope(self, domain_ids) -> models.Q:
        return models.Q(pk__in=domain_ids)


class Domain(models.Model):
    """A mail domain hosted by this gateway."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "name",
        "mail_hostname",
        "enabled",
        "managers",
    )

    name = DomainNameField(
        max_length=253,
        unique=True,
        help_text="The domain people write after the @, e.g. family.example. "
        "Internationalized names are stored in their ASCII (xn--) form.",
    )
    mail_hostname = DomainNameField(
        max_length=253,
        help_text="The public name of the mail server (MX, SMTP banner, TLS certificate), "
        "e.g. mail.family.example.",
    )
    enabled = models.BooleanField(default=True)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_domains",
        help_text="Family members who manage this domain's mailboxes, aliases and keys.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.unicode_name

    @property
    def unicode_name(self) -> str:
        import idna

        try:
            return idna.decode(self.name)
        except idna.IDNAError:
            return self.name


def validate_destinations(value) -> None:
    """The list's shape; each address was already brought to its stored form (or refused) by
    ``AddressListField``, so that ``A@x`` and ``a@x`` count as the same destination."""
    if not isinstance(value, list) or not value:
        raise ValidationError("Give at least one destination address.", code="no_destination")
    if not all(isinstance(address, str) for address in value):
        raise ValidationError("Each destination must be an address.", code="invalid_address")
    if len(set(value)) != len(value):
        raise ValidationError("A destination is listed twice.", code="duplicate_destination")


def validate_forward_list(value) -> None:
    """A mailbox's forwards: like an alias's destinations, but none is allowed."""
    if value == []:
        return
    validate_destinations(value)


class MailboxQuerySet(DomainScopedQuerySet):
    def read_scope(self, user) -> models.Q:
        return self.write_scope(user) | models.Q(owner=user)


class Mailbox(models.Model):
    """A mailbox (a user account that receives and sends mail)."""

    # What the mailbox's own user changes too (its settings page and the API), not only the
    # domain's managers.
    SETTINGS_FIELDS = (
        "forward_to",
        "forward_keep_copy",
        "autoreply_enabled",
        "autoreply_subject",
        "autoreply_body",
        "autoreply_start",
        "autoreply_end",
        "spam_enabled",
        "spam_threshold",
        "imap_enabled",
        "pop3_enabled",
        "smtp_enabled",
    )
    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "domain",
        "local_part",
        "display_name",
        "quota_mb",
        "enabled",
        "owner",
        *SETTINGS_FIELDS,
    )

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="mailboxes")
    local_part = LocalPartField(max_length=64, help_text="The part before the @, e.g. alice.")
    display_name = models.CharField(
        max_length=200,
        blank=True,
        validators=[reject_control_characters],
        help_text="The name shown to correspondents, e.g. Alice Example.",
    )
    quota_mb = models.PositiveIntegerField(
        default=0, help_text="Storage quota in megabytes; 0 means unlimited."
    )
    enabled = models.BooleanField(default=True)
    password_hash = models.CharField(max_length=128, editable=False, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="mailboxes",
        help_text="The panel account that may change this mailbox's password, forwarding, "
        "auto-reply, spam and login settings, and make its device passwords.",
    )
    forward_to = AddressListField(
        default=list,
        blank=True,
        validators=[validate_forward_list],
        help_text="Forward every message to these addresses (one per line); empty: no forwarding.",
    )
    forward_keep_copy = models.BooleanField(
        default=True, help_text="Keep a copy in this mailbox of what is forwarded."
    )
    autoreply_enabled = models.BooleanField(
        default=False,
        help_text="Answer each sender once every few days (never mailing lists, bulk mail or "
        "automatic senders, RFC 3834).",
    )
    autoreply_subject = models.CharField(
        max_length=255, blank=True, validators=[reject_control_characters]
    )
    autoreply_body = models.TextField(
        max_length=AUTOREPLY_BODY_MAX,
        blank=True,
        validators=[reject_control_characters_in_text],
        help_text="Plain text in lines, without tabs or other control characters.",
    )
    autoreply_start = models.DateField(
        null=True, blank=True, help_text="The first day to answer; empty: from now on."
    )
    autoreply_end = models.DateField(
        null=True, blank=True, help_text="The last day to answer; empty: until turned off."
    )
    spam_enabled = models.BooleanField(
        default=True, help_text="Move mail the spam filter scores as spam to the Junk folder."
    )
    spam_threshold = models.PositiveSmallIntegerField(
        default=80,
        validators=[MaxValueValidator(100)],
        help_text="From which spam score, in percent of the filter's scale, mail goes to Junk.",
    )
    imap_enabled = models.BooleanField("IMAP enabled", default=True)
    pop3_enabled = models.BooleanField("POP3 enabled", default=True)
    smtp_enabled = models.BooleanField(
        "SMTP submission enabled",
        default=True,
        help_text="Whether mail clients may send through this mailbox (ports 465 and 587).",
    )
    quota_used_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Storage in use as the mail server last counted it; null: not read yet.",
    )
    quota_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["domain__name", "local_part"]
        verbose_name_plural = "mailboxes"
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_unique_address")
        ]

    def __str__(self):
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    def validate_unique(self, exclude=None):
        super().validate_unique(exclude)
        _refuse_taken_address(self, Alias, "An alias", exclude)

    @property
    def quota_used(self) -> str:
        """Storage in use beside the quota, as the pages show it."""
        limit = f"of {self.quota_mb} MB" if self.quota_mb else "(no quota)"
        if self.quota_used_bytes is None:
            return f"not counted yet {limit}"
        return f"{self.quota_used_bytes / MIB:.1f} MB {limit}"

    def clean(self):
        errors = {}
        if self.domain_id and self.forward_to and are_addresses(self.forward_to):
            if self.address in self.forward_to:
                errors["forward_to"] = (
                    "A mailbox cannot forward to itself; keep a copy here instead."
                )
            elif loop := forwarding_loop(self.address, self.forward_to):
                errors["forward_to"] = _loop_message(loop)
        if self.autoreply_enabled and not (self.autoreply_subject and self.autoreply_body):
            errors["autoreply_body"] = "An auto-reply needs a subject and a text."
        start, end = self.autoreply_start, self.autoreply_end
        if start and end and end < start:
            errors["autoreply_end"] = "The last day of the auto-reply is before its first day."
        if errors:
            raise ValidationError(errors)
        # One line ending, as a sieve script and Mailu's text column both keep it.
        self.autoreply_body = LINE_BREAK.sub("\n", self.autoreply_body)

    def set_password(self, raw_password: str) -> None:
        self.password_hash = passwords.hash_password(raw_password)

    def check_password(self, raw_password: str) -> bool:
        return passwords.check_password(raw_password, self.password_hash)


class AppPasswordQuerySet(DomainScopedQuerySet):
    """A mailbox's device passwords are its managers' and its own user's."""

    domain_lookup = "mailbox__domain"

    def write_scope(self, user) -> models.Q:
        return super().write_scope(user) | models.Q(mailbox__owner=user)


class AppPassword(models.Model):
    """A password for one device of a mailbox (a phone, a mail program), which IMAP and SMTP
    accept like the mailbox's own: made by Mailgate, shown once, kept only as a hash."""

    MAX_PER_MAILBOX = 20

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(
        max_length=100,
        validators=[reject_control_characters],
        help_text="The device it is for, e.g. Alice's phone.",
    )
    password_hash = models.CharField(max_length=128, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The last login with it that the mail server reported; null: not seen yet.",
    )

    objects = AppPasswordQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox", "name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="app_password_unique_name")
        ]

    def __str__(self):
        return f"{self.name} ({self.mailbox})"

    @classmethod
    def issue(cls, *, mailbox: Mailbox, name: str) -> tuple["AppPassword", str]:
        """A new device password; the plaintext is returned this once and never stored."""
        if mailbox.app_passwords.count() >= cls.MAX_PER_MAILBOX:
            raise ValidationError(
                f"A mailbox has at most {cls.MAX_PER_MAILBOX} device passwords: revoke one first."
            )
        secret = passwords.new_device_password()
        row = cls(mailbox=mailbox, name=name, password_hash=passwords.hash_device_password(secret))
        row.full_clean()
        row.save()
        return row, secret


class AliasQuerySet(DomainScopedQuerySet):
    pass


class Alias(models.Model):
    """An address that forwards to one or more destinations; an empty local part catches all."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "domain",
        "local_part",
        "destinations",
        "allowed_as_sender",
        "enabled",
    )

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    local_part = LocalPartField(
        max_length=64,
        blank=True,
        help_text="The part before the @; leave empty for a catch-all of the whole domain.",
    )
    destinations = AddressListField(
        validators=[validate_destinations],
        help_text="Where mail to this alias goes: one address per line.",
    )
    allowed_as_sender = models.BooleanField(
        default=False,
        help_text="Let the destination mailboxes send mail with this alias as the From address "
        "(smtpd_sender_login_maps).",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AliasQuerySet.as_manager()

    class Meta:
        ordering = ["domain__name", "local_part"]
        verbose_name_plural = "aliases"
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="alias_unique_address")
        ]

    def __str__(self):
        return self.address

    @property
    def address(self) -> str:
        return (
            f"{self.local_part}@{self.domain.name}" if self.local_part else f"@{self.domain.name}"
        )

    def validate_unique(self, exclude=None):
        super().validate_unique(exclude)
        _refuse_taken_address(self, Mailbox, "A mailbox", exclude)

    def clean(self):
        if not (self.domain_id and are_addresses(self.destinations)):
            return
        if self.address in self.destinations:
            raise ValidationError({"destinations": "An alias cannot forward to itself."})
        if loop := forwarding_loop(self.address, self.destinations):
            raise ValidationError({"destinations": _loop_message(loop)})


def _loop_message(loop: list[str]) -> str:
    return "This makes a loop, mail would go round forever: " + " → ".join(loop) + "."


def forwarding_loop(address: str, first_hops: list[str]) -> list[str] | None:
    """The way back to ``address`` if mail sent on to ``first_hops`` comes back to it through
    the aliases and mailbox forwards stored now (``address``'s own stored hops excluded: they
    are what is being replaced), as a list of addresses from ``address`` to itself; else None.
    One walk step costs three queries, whatever the number of addresses it follows."""
    came_from = {hop: address for hop in first_hops}
    frontier = set(first_hops)
    while frontier and address not in frontier:
        following = {}
        for source, hops in _next_hops(frontier - {address}, exclude=address).items():
            for hop in hops:
                if hop not in came_from:
                    came_from[hop] = source
                    following[hop] = source
        frontier = set(following)
    if address not in frontier:
        return None
    path, at = [address], came_from[address]
    while at != address:
        path.append(at)
        at = came_from[at]
    return [address, *reversed(path[1:]), address]


def _next_hops(addresses: set[str], *, exclude: str) -> dict[str, list[str]]:
    """Where mail to each of ``addresses`` (of this server's domains) goes on to: an alias's
    destinations, a mailbox's forwards, else the domain's catch-all."""
    parts = {address: address.rpartition("@")[::2] for address in addresses}
    wanted = models.Q(pk__in=[])
    for local, domain in parts.values():
        wanted |= models.Q(local_part=local, domain__name=domain)
    hops: dict[str, list[str]] = {}
    known = set()
    for model, field in ((Alias, "destinations"), (Mailbox, "forward_to")):
        for local, domain, targets in model.objects.filter(wanted).values_list(
            "local_part", "domain__name", field
        ):
            known.add(f"{local}@{domain}")
            hops[f"{local}@{domain}"] = targets
    unknown = {address: domain for address, (_, domain) in parts.items() if address not in known}
    if unknown:
        catch_alls = dict(
            Alias.objects.filter(local_part="", domain__name__in=set(unknown.values())).values_list(
                "domain__name", "destinations"
            )
        )
        for address, domain in unknown.items():
            hops[address] = catch_alls.get(domain, [])
    hops.pop(exclude, None)
    return hops


def _refuse_taken_address(row, other: type[models.Model], what: str, exclude) -> None:
    """The friendly form of ``AddressClaim``'s guarantee. In validate_unique() rather than
    clean(): Django leaves out a local part that failed its own checks, which then must not
    reach a query (a lone surrogate cannot)."""
    if "local_part" in (exclude or ()) or not (row.domain_id and row.local_part):
        return
    if other.objects.filter(domain_id=row.domain_id, local_part=row.local_part).exists():
        raise ValidationError(
            {"local_part": f"{what} with this address already exists in the domain."}
        )


class AddressClaim(models.Model):
    """An address of a domain, held by the one mailbox or alias that has it: the database's own
    guarantee that an address is one thing, also between two requests at the same moment.

    Rows are written by triggers on the mailbox and alias tables (migration
    ``0005_address_claims``), for every way a row is written, so no code maintains them;
    ``validate_unique()`` above gives the friendly message, this table the guarantee."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    local_part = models.CharField(max_length=64, blank=True)
    mailbox = models.OneToOneField(
        Mailbox, on_delete=models.CASCADE, null=True, related_name="address_claim"
    )
    alias = models.OneToOneField(
        Alias, on_delete=models.CASCADE, null=True, related_name="address_claim"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="address_claim_unique"),
            models.CheckConstraint(
                condition=models.Q(mailbox__isnull=True, alias__isnull=False)
                | models.Q(mailbox__isnull=False, alias__isnull=True),
                name="address_claim_one_owner",
            ),
        ]

    def __str__(self):
        return f"{self.local_part}@{self.domain_id}"


class ApiTokenQuerySet(ScopedQuerySet):
    def write_scope(self, user) -> models.Q:
        return models.Q(user=user)

    def left_without_domains_by(self, domain: Domain) -> models.QuerySet:
        """The limited tokens whose only domain is ``domain``: once it is deleted they reach
        nothing (they stay limited)."""
        elsewhere = self.model.domains.through.objects.exclude(domain=domain)
        return (
            self.filter(limited=True, domains=domain)
            .exclude(pk__in=elsewhere.values("apitoken_id"))
            .select_related("user")
        )


class ApiToken(models.Model):
    """A token for scripts. Only its SHA-256 digest is stored: a token is never needed again,
    only compared, so a digest (which no key can reverse) is safer than encryption."""

    PREFIX = "mg_"
    # What the page and the API set on a new token, listed once for its form and its serializer.
    EDITABLE_FIELDS = ("name", "domains", "read_only")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, validators=[reject_control_characters])
    # Said explicitly rather than read from ``domains``: a limited token whose domains are all
    # deleted must reach nothing, not everything.
    limited = models.BooleanField(
        default=False,
        editable=False,
        help_text="The token reaches only its domains (none once they are all deleted) and "
        "never hosts, relays or deployments.",
    )
    domains = models.ManyToManyField(
        Domain,
        blank=True,
        related_name="api_tokens",
        help_text="Limit the token to these domains (their mailboxes, aliases, keys and DNS); "
        "a limited token never reaches hosts or deployments. None: all the user may reach.",
    )
    read_only = models.BooleanField(
        default=False, help_text="The token may read but not create, change or delete."
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=12, editable=False, help_text="The token's first letters.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def digest_of(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(
        cls, *, user, name: str, domains=(), read_only: bool = False
    ) -> tuple["ApiToken", str]:
        """Create a token; the plaintext is returned this once and never stored."""
        if limited_by_token(user):
            raise PermissionDenied("A token limited to domains cannot make tokens.")
        outside = {domain.pk for domain in domains} - set(
            Domain.objects.visible_to(user).values_list("pk", flat=True)
        )
        if outside:
            raise ValidationError({"domains": "A token can only be limited to your own domains."})
        token = cls.PREFIX + secrets.token_urlsafe(32)
        row = cls(
            user=user,
            name=name,
            read_only=read_only,
            limited=bool(domains),
            digest=cls.digest_of(token),
            hint=token[:8],
        )
        row.full_clean()
        row.save()
        row.domains.set(domains)
        return row, token


class StatusItemQuerySet(DomainScopedQuerySet):
    """A domain's items are its managers' to see; the infrastructure's (no domain) the owner's."""


class StatusItem(models.Model):
    """One line of the status page as last checked: its colour, why, and the fix."""

    key = models.CharField(max_length=200, unique=True, help_text="'<probe>:<what>', stable.")
    probe = models.CharField(max_length=50)
    section = models.CharField(max_length=50)
    label = models.CharField(max_length=200)
    colour = models.CharField(max_length=5, choices=Colour)
    message = models.TextField(blank=True)
    fix = models.TextField(blank=True)
    domain = models.ForeignKey(
        Domain, on_delete=models.CASCADE, null=True, blank=True, related_name="status_items"
    )
    element = models.CharField(
        max_length=100, blank=True, help_text="The part of the topology picture it colours."
    )
    checked_at = models.DateTimeField()
    changed_at = models.DateTimeField(help_text="When it took its current colour.")

    objects = StatusItemQuerySet.as_manager()

    class Meta:
        ordering = ["section", "label", "key"]

    def __str__(self):
        return f"{self.label}: {self.colour}"


class StatusChangeQuerySet(DomainScopedQuerySet):
    """Changes follow their item's scope."""


class StatusChange(models.Model):
    """A change of a status item's colour: the status page's history."""

    key = models.CharField(max_length=200, db_index=True)
    label = models.CharField(max_length=200, help_text="The item's label at the time.")
    domain = models.ForeignKey(
        Domain, on_delete=models.CASCADE, null=True, blank=True, related_name="status_changes"
    )
    before = models.CharField(max_length=5, choices=Colour, blank=True)
    after = models.CharField(max_length=5, choices=Colour)
    message = models.TextField(blank=True)
    at = models.DateTimeField()

    objects = StatusChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self):
        return f"{self.label}: {self.before or 'new'} → {self.after}"
