"""Workflows on the mail directory that touch several rows, and the status page's refresh."""

import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from gateway import passwords, status
from gateway.models import (
    STANDARD_ALIASES,
    Alias,
    AppPassword,
    Domain,
    Mailbox,
    StatusChange,
    StatusItem,
)
from gateway.queueing import after_commit
from gateway.scoping import acts_as_owner


@transaction.atomic
def domain_create(
    *,
    name: str,
    mail_hostname: str,
    enabled: bool = True,
    aliases_to: Mailbox | None = None,
    first_mailbox: str = "",
    first_mailbox_password: str = "",
    managers: Iterable = (),
) -> Domain:
    """Create a domain, with its managers, and its standard aliases (RFC 2142), delivered to
    ``aliases_to`` or to a first mailbox created in the new domain. The page and the API show
    its refusals as they are, so the rules for the standard aliases and the first mailbox's
    password are said here alone."""
    if (aliases_to is None) == (not first_mailbox):
        raise ValidationError(
            {
                "aliases_to": "Choose the mailbox that receives abuse@, postmaster@ and the other "
                "standard aliases, or name a first mailbox to create in this domain (one of the "
                "two)."
            }
        )
    if first_mailbox:
        try:
            passwords.validate_mailbox_password(first_mailbox_password)
        except ValidationError as exc:
            raise ValidationError({"first_mailbox_password": exc.messages}) from None
    domain = Domain(name=name, mail_hostname=mail_hostname, enabled=enabled)
    domain.full_clean()
    domain.save()
    domain.managers.set(managers)
    if first_mailbox:
        aliases_to = mailbox_create(
            domain=domain, local_part=first_mailbox, password=first_mailbox_password
        )
    for local_part in STANDARD_ALIASES:
        if local_part == aliases_to.local_part and aliases_to.domain_id == domain.pk:
            continue
        alias = Alias(domain=domain, local_part=local_part, destinations=[aliases_to.address])
        alias.full_clean()
        address_save(alias)
    return domain


def mailbox_create(*, domain: Domain, local_part: str, password: str, **fields) -> Mailbox:
    mailbox = Mailbox(domain=domain, local_part=local_part, **fields)
    mailbox_set_password(mailbox=mailbox, password=password, save=False)
    mailbox.full_clean()
    address_save(mailbox)
    return mailbox


def mailbox_require_password(*, mailbox: Mailbox, password: str | None) -> None:
    """Refuse a new mailbox without a password, for its page and the API alike. A service's
    rule, not the model's: adoption takes in a mailbox the host had without one."""
    if mailbox.pk is None and not password:
        raise ValidationError({"password": "A new mailbox needs a password."})


def address_save(row: Mailbox | Alias) -> None:
    """Save a cleaned mailbox or alias. Two requests for one address at the same moment both
    pass ``full_clean()``; the database refuses the second (``AddressClaim`` and each table's
    unique address) once the first commits, and cleaning again, which now sees the first,
    raises the ValidationError a request a moment later would have got."""
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        row.full_clean()
        raise  # not about the address: a fault, not the input


def mailbox_usage_store(*, counts: dict[str, int], at: datetime | None = None) -> int:
    """Store the bytes each mailbox uses, by address, as a mail server counted them; returns
    how many mailboxes were counted. Not a change of the directory: no change-log entry, so no
    deployment follows."""
    moment = at or timezone.now()
    rows = []
    for mailbox in Mailbox.objects.select_related("domain").only(
        "pk", "local_part", "domain__name"
    ):
        if (used := counts.get(mailbox.address)) is not None:
            mailbox.quota_used_bytes, mailbox.quota_read_at = used, moment
            rows.append(mailbox)
    Mailbox.objects.bulk_update(rows, ["quota_used_bytes", "quota_read_at"], batch_size=1000)
    return len(rows)


def app_passwords_mark_used(*, used: dict[int | tuple[str, str], datetime]) -> int:
    """Record when each device password last logged in, as a mail server reported it: by row,
    or by its mailbox's address and its name; an older time than the one kept changes nothing.
    Not a change of the directory either: no change-log entry, no deployment. Returns how many
    rows changed."""
    changed = 0
    for device, moment in used.items():
        if isinstance(device, int):
            which = Q(pk=device)
        else:
            address, name = device
            local, _, domain = address.rpartition("@")
            which = Q(mailbox__local_part=local, mailbox__domain__name=domain, name=name)
        newer = Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment)
        changed += AppPassword.objects.filter(which, newer).update(last_used_at=moment)
    return changed


def mailbox_set_password(*, mailbox: Mailbox, password: str, save: bool = True) -> None:
    try:
        mailbox.set_password(password)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    if save:
        mailbox.save(update_fields=["password_hash"])


def status_refresh(
    *, now: datetime | None = None, probes: list[str] | None = None
) -> list[StatusChange]:
    """Run every registered status probe (``gateway.status``), or only those named ``probes``,
    and store what it found: one item per finding, and a change whenever an item takes a new
    colour (or first appears). Items that a probe which ran to the end no longer reports (a
    deleted host) go away; their history stays."""
    findings, completed = status.run_probes(probes)
    moment = now or timezone.now()
    changes = [change for finding in findings if (change := _status_store(finding, moment))]
    reported = [finding.key for finding in findings]
    StatusItem.objects.filter(probe__in=completed).exclude(key__in=reported).delete()
    return changes


def _status_store(finding: status.Finding, moment: datetime) -> StatusChange | None:
    fields = {
        "section": finding.section,
        "label": finding.label,
        "message": finding.message,
        "fix": finding.fix,
        "domain_id": finding.domain_id,
        "element": finding.element,
        "checked_at": moment,
    }
    item, created = StatusItem.objects.get_or_create(
        key=finding.key,
        defaults={
            **fields,
            "probe": finding.key.partition(":")[0],
            "colour": finding.colour,
            "changed_at": moment,
        },
    )
    if created:
        return _status_change(finding, before="", moment=moment)
    # Conditional on the colour read above: of two refreshes racing, one records the change.
    if item.colour != finding.colour and StatusItem.objects.filter(
        pk=item.pk, colour=item.colour
    ).update(**fields, colour=finding.colour, changed_at=moment):
        return _status_change(finding, before=item.colour, moment=moment)
    StatusItem.objects.filter(pk=item.pk).update(**fields)
    return None


def _status_change(finding: status.Finding, *, before: str, moment: datetime) -> StatusChange:
    return StatusChange.objects.create(
        key=finding.key,
        label=finding.label,
        domain_id=finding.domain_id,
        before=before,
        after=finding.colour,
        message=finding.message,
        at=moment,
    )


class TooSoon(Exception):
    """A status check was queued moments ago; ``wait`` seconds until the next may be."""

    def __init__(self, wait: int):
        super().__init__(f"A check was started moments ago; try again in {wait} s.")
        self.wait = wait


STATUS_CHECK_LOCK = "gateway:status-check-queued"


def status_refresh_queue(*, user) -> None:
    """Queue a run of every status probe (after commit), for the owner alone and at most once
    per ``MAILGATE_STATUS_CHECK_COOLDOWN`` seconds: each run connects to every host over SSH
    and probes the gateway's ports, so clicks and scripts must not multiply that. The mark
    lives in the cache that every web worker shares."""
    if not acts_as_owner(user):
        raise PermissionDenied("Only the owner starts a status check.")
    cooldown = settings.MAILGATE_STATUS_CHECK_COOLDOWN
    until = time.time() + cooldown
    if not cache.add(STATUS_CHECK_LOCK, until, timeout=cooldown):
        raise TooSoon(max(1, round((cache.get(STATUS_CHECK_LOCK) or until) - time.time())))
    after_commit("gateway.tasks.status_refresh")
