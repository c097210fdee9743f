"""Workflows on the mail directory that touch several rows."""

from django.core.exceptions import ValidationError
from django.db import transaction

from gateway.models import STANDARD_ALIASES, Alias, Domain, Mailbox


@transaction.atomic
def domain_create(
    *,
    name: str,
    mail_hostname: str,
    enabled: bool = True,
    aliases_to: Mailbox | None = None,
    first_mailbox: str = "",
    first_mailbox_password: str = "",
) -> Domain:
    """Create a domain and its standard aliases (RFC 2142), delivered to ``aliases_to`` or to a
    first mailbox created in the new domain."""
    if (aliases_to is None) == (not first_mailbox):
        raise ValidationError(
            "Choose the mailbox that receives abuse@, postmaster@ and the other standard "
            "aliases, or name a first mailbox to create in this domain (one of the two)."
        )
    domain = Domain(name=name, mail_hostname=mail_hostname, enabled=enabled)
    domain.full_clean()
    domain.save()
    if first_mailbox:
        aliases_to = mailbox_create(
            domain=domain, local_part=first_mailbox, password=first_mailbox_password
        )
    for local_part in STANDARD_ALIASES:
        if local_part == aliases_to.local_part and aliases_to.domain_id == domain.pk:
            continue
        alias = Alias(domain=domain, local_part=local_part, destinations=[aliases_to.address])
        alias.full_clean()
        alias.save()
    return domain


def mailbox_create(*, domain: Domain, local_part: str, password: str, **fields) -> Mailbox:
    mailbox = Mailbox(domain=domain, local_part=local_part, **fields)
    mailbox_set_password(mailbox=mailbox, password=password, save=False)
    mailbox.full_clean()
    mailbox.save()
    return mailbox


def mailbox_set_password(*, mailbox: Mailbox, password: str, save: bool = True) -> None:
    try:
        mailbox.set_password(password)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    if save:
        mailbox.save(update_fields=["password_hash"])
