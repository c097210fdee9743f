"""Reads of the mail directory that renderers need: plain, ordered snapshots loaded in a few
queries, so rendering ten thousand mailboxes costs three queries, not ten thousand."""

from dataclasses import dataclass

from gateway.models import Alias, Domain, Mailbox


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
