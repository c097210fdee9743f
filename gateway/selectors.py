"""Reads of the mail directory that renderers need: plain, ordered snapshots loaded in a few
queries, so rendering ten thousand mailboxes costs three queries, not ten thousand; and the
status page's items as a user may see them."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from django.core.paginator import Paginator
from django.db.models import Case, Count, Value, When

from gateway.models import (
    Alias,
    ApiToken,
    AppPassword,
    Domain,
    Mailbox,
    StatusChange,
    StatusItem,
)
from gateway.status import SEVERITY, Colour, worst

STATUS_HISTORY = 50  # changes shown on the page
STATUS_PAGE = 100  # items shown on one page


@dataclass(frozen=True)
class DomainEntry:
    name: str
    mail_hostname: str


@dataclass(frozen=True)
class DevicePassword:
    """A device password as the mail server gets it: its row (which the server reports back
    when it was used), its hash and its name (Mailu's token comment)."""

    pk: int
    password_hash: str
    name: str = ""


@dataclass(frozen=True)
class MailboxEntry:
    address: str
    local_part: str
    domain: str
    display_name: str
    quota_mb: int
    password_hash: str
    # Mailbox.SETTINGS_FIELDS, with the model's defaults.
    forward_to: tuple[str, ...] = ()
    forward_keep_copy: bool = True
    autoreply_enabled: bool = False
    autoreply_subject: str = ""
    autoreply_body: str = ""
    autoreply_start: date | None = None
    autoreply_end: date | None = None
    spam_enabled: bool = True
    spam_threshold: int = 80
    imap_enabled: bool = True
    pop3_enabled: bool = True
    smtp_enabled: bool = True
    app_passwords: tuple[DevicePassword, ...] = ()  # its device passwords, oldest first


@dataclass(frozen=True)
class AliasEntry:
    address: str  # "@domain" for a catch-all
    local_part: str
    domain: str
    destinations: tuple[str, ...]
    allowed_as_sender: bool


@dataclass(frozen=True)
class MailDirectory:
    """The enabled domains with their enabled mailboxes and aliases, ordered by address."""

    domains: tuple[DomainEntry, ...]
    mailboxes: tuple[MailboxEntry, ...]
    aliases: tuple[AliasEntry, ...]


def mail_domains() -> tuple[DomainEntry, ...]:
    """The enabled domains in name order: the mail directory's, and those a host's public name
    comes from (``Host.public_name``)."""
    enabled = Domain.objects.filter(enabled=True).order_by("name")
    return tuple(DomainEntry(*row) for row in enabled.values_list("name", "mail_hostname"))


def mail_directory() -> MailDirectory:
    mailboxes = (
        Mailbox.objects.filter(enabled=True, domain__enabled=True)
        .order_by("domain__name", "local_part")
        .values_list(
            "pk",
            "local_part",
            "domain__name",
            "display_name",
            "quota_mb",
            "password_hash",
            *Mailbox.SETTINGS_FIELDS,
        )
    )
    devices = defaultdict(list)
    for pk, mailbox_id, digest, name in AppPassword.objects.order_by("pk").values_list(
        "pk", "mailbox_id", "password_hash", "name"
    ):
        devices[mailbox_id].append(DevicePassword(pk, digest, name))
    aliases = (
        Alias.objects.filter(enabled=True, domain__enabled=True)
        .order_by("domain__name", "local_part")
        .values_list("local_part", "domain__name", "destinations", "allowed_as_sender")
    )
    return MailDirectory(
        domains=mail_domains(),
        mailboxes=tuple(
            MailboxEntry(
                f"{local}@{domain}",
                local,
                domain,
                name,
                quota,
                digest,
                tuple(forward_to),
                *settings,
                app_passwords=tuple(devices[pk]),
            )
            for pk, local, domain, name, quota, digest, forward_to, *settings in mailboxes
        ),
        aliases=tuple(
            AliasEntry(f"{local}@{domain}", local, domain, tuple(targets), sender)
            for local, domain, targets, sender in aliases
        ),
    )


def status_overview(user, *, page=1, show_green: bool = False) -> dict:
    """The status items ``user`` may see: how many of each colour, one page of them grouped by
    section and worst first within it (only the problems unless ``show_green``: with many
    domains the OK items run into thousands), and the latest changes. A fixed number of
    queries, whatever the number of items."""
    visible = StatusItem.objects.visible_to(user)
    counts = dict.fromkeys(SEVERITY, 0)
    counts.update(visible.order_by().values_list("colour").annotate(Count("pk")))
    listed = visible if show_green else visible.exclude(colour=Colour.GREEN)
    severity = Case(*(When(colour=c, then=Value(n)) for c, n in SEVERITY.items()), default=0)
    listed = listed.order_by("section", -severity, "label")
    return {
        "page_obj": Paginator(listed, STATUS_PAGE).get_page(page),
        "show_green": show_green,
        "overall": worst(colour for colour, count in counts.items() if count),
        "counts": counts,
        "checked": any(counts.values()),
        "changes": StatusChange.objects.visible_to(user)[:STATUS_HISTORY],
    }


def domain_delete_effects(domain: Domain) -> list[str]:
    """What deleting ``domain`` does beyond its own rows, in sentences: the delete page shows
    them before, the API's answer after."""
    return [
        f"The API token {token} of {token.user} is limited to {domain} alone: it stays "
        "limited and will reach nothing."
        for token in ApiToken.objects.left_without_domains_by(domain)
    ]
