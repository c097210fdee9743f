"""Reads of the mail directory that renderers need: plain, ordered snapshots loaded in a few
queries, so rendering ten thousand mailboxes costs three queries, not ten thousand; and the
status page's items as a user may see them."""

from dataclasses import dataclass

from gateway.models import Alias, Domain, Mailbox, StatusChange, StatusItem
from gateway.status import SEVERITY, worst

STATUS_HISTORY = 50  # changes shown on the page


@dataclass(frozen=True)
class DomainEntry:
    name: str
    mail_hostname: str


@dataclass(frozen=True)
class MailboxEntry:
    address: str
    local_part: str
    domain: str
    display_name: str
    quota_mb: int
    password_hash: str


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

    @property
    def primary_hostname(self) -> str:
        return self.domains[0].mail_hostname if self.domains else ""


def mail_directory() -> MailDirectory:
    domains = Domain.objects.filter(enabled=True).order_by("name")
    mailboxes = (
        Mailbox.objects.filter(enabled=True, domain__enabled=True)
        .order_by("domain__name", "local_part")
        .values_list("local_part", "domain__name", "display_name", "quota_mb", "password_hash")
    )
    aliases = (
        Alias.objects.filter(enabled=True, domain__enabled=True)
        .order_by("domain__name", "local_part")
        .values_list("local_part", "domain__name", "destinations", "allowed_as_sender")
    )
    return MailDirectory(
        domains=tuple(
            DomainEntry(name, host) for name, host in domains.values_list("name", "mail_hostname")
        ),
        mailboxes=tuple(
            MailboxEntry(f"{local}@{domain}", local, domain, name, quota, digest)
            for local, domain, name, quota, digest in mailboxes
        ),
        aliases=tuple(
            AliasEntry(f"{local}@{domain}", local, domain, tuple(targets), sender)
            for local, domain, targets, sender in aliases
        ),
    )


def status_overview(user) -> dict:
    """The status items ``user`` may see, worst first within each section, the overall colour,
    and the latest changes (two queries)."""
    items = sorted(
        StatusItem.objects.visible_to(user),
        key=lambda item: (item.section, -SEVERITY[item.colour], item.label),
    )
    return {
        "items": items,
        "overall": worst(item.colour for item in items),
        "counts": {colour: sum(item.colour == colour for item in items) for colour in SEVERITY},
        "changes": StatusChange.objects.visible_to(user)[:STATUS_HISTORY],
    }
