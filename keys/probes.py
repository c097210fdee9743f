"""The OpenPGP probes of the status page (found by ``gateway.status``):

- ``keys``: per domain, whether every mailbox with a published key still has one that has not
  expired (WKD stops serving an expired key) and none that expires within the alert window;
- ``trust``: per trust anchor (ProtonCA) its own expiry, and per contact key the certification
  alerts that ``keys.services.certifications_check`` already stores on its own schedule.
"""

from datetime import datetime

from django.utils import timezone

from gateway.status import Colour, Finding, probe, worst
from keys.choices import AlertKind
from keys.models import ContactKey, OpenPGPKey, TrustAnchor
from keys.services import ALERT_WINDOW


@probe("keys")
def mailbox_key_findings():
    now = timezone.now()
    rows = (
        OpenPGPKey.objects.filter(
            published=True, mailbox__enabled=True, mailbox__domain__enabled=True
        )
        .order_by("mailbox__domain__name", "mailbox__local_part")
        .values_list(
            "mailbox__domain_id", "mailbox__domain__name", "mailbox__local_part", "expires_at"
        )
    )
    latest: dict[tuple[int, str], dict[str, datetime | None]] = {}
    for domain_id, domain, local, expires_at in rows:
        ends = latest.setdefault((domain_id, domain), {})
        ends[local] = _later(ends.get(local, expires_at), expires_at)
    for (domain_id, domain), ends in latest.items():
        yield _domain_keys(domain_id, domain, ends, now)


def _later(one: datetime | None, other: datetime | None) -> datetime | None:
    """The later end of two keys; None (never expires) outlasts any date."""
    return None if one is None or other is None else max(one, other)


def _domain_keys(domain_id: int, domain: str, ends: dict, now: datetime) -> Finding:
    expired = sorted(f"{local}@{domain}" for local, end in ends.items() if end and end <= now)
    expiring = sorted(
        f"{local}@{domain}"
        for local, end in ends.items()
        if end and now < end <= now + ALERT_WINDOW
    )
    finding = {"key": f"keys:{domain_id}", "section": "Keys", "label": f"{domain}: OpenPGP keys"}
    if expired:
        return Finding(
            **finding,
            domain_id=domain_id,
            colour=Colour.RED,
            message=f"Expired, no longer served by WKD: {', '.join(expired)}.",
            fix="Extend the key's expiry in the mail client (or generate a new key) and upload it.",
        )
    if expiring:
        return Finding(
            **finding,
            domain_id=domain_id,
            colour=Colour.AMBER,
            message=f"Expire within {ALERT_WINDOW.days} days: {', '.join(expiring)}.",
            fix="Extend the key's expiry in the mail client and upload it again.",
        )
    return Finding(
        **finding,
        domain_id=domain_id,
        colour=Colour.GREEN,
        message=f"{len(ends)} published key(s), none expiring within {ALERT_WINDOW.days} days.",
    )


@probe("trust")
def trust_findings():
    now = timezone.now()
    for anchor in TrustAnchor.objects.all():
        yield _anchor(anchor, now)
    for contact in ContactKey.objects.prefetch_related("alerts__trust_anchor"):
        yield _contact(contact)


def _anchor(anchor: TrustAnchor, now: datetime) -> Finding:
    end = anchor.expires_at
    colour = (
        Colour.GREEN
        if end is None or end > now + ALERT_WINDOW
        else Colour.AMBER
        if end > now
        else Colour.RED
    )
    return Finding(
        key=f"trust:anchor:{anchor.fingerprint}",
        section="Keys",
        label=f"Trust anchor {anchor.name}",
        colour=colour,
        message="Does not expire." if end is None else f"Expires {end:%Y-%m-%d}.",
        fix="" if colour == Colour.GREEN else f"Fetch {anchor.name}'s renewed key again.",
    )


def _contact(contact: ContactKey) -> Finding:
    alerts = list(contact.alerts.all())
    colour = worst(
        Colour.RED if alert.kind == AlertKind.EXPIRED else Colour.AMBER for alert in alerts
    )
    message = "; ".join(
        f"{alert.get_kind_display()} ({alert.expires_at:%Y-%m-%d}): {alert.user_id} by "
        f"{alert.trust_anchor.name}"
        for alert in alerts
    )
    return Finding(
        key=f"trust:contact:{contact.fingerprint}",
        section="Keys",
        label=f"Contact key {contact}",
        colour=colour,
        message=message or f"Certifications current; validity {contact.get_validity_display()}.",
        fix="Fetch the contact's key again to get its renewed certification." if alerts else "",
    )
