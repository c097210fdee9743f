"""The certificates' probe of the status page (found by ``gateway.status``): one item per
certificate, from its history; nothing here talks to the CA."""

import datetime

from django.conf import settings
from django.utils import timezone

from certs import selectors
from certs.choices import Outcome
from certs.models import Certificate, Issuance
from gateway.status import Colour, Finding, probe


@probe("certificates")
def certificate_findings():
    now = timezone.now()
    for certificate, history in selectors.certificates_with_history():
        yield certificate_finding(certificate, history, now)


def certificate_finding(certificate: Certificate, history: list[Issuance], now) -> Finding:
    """What the status page says of ``certificate`` from its ``history`` (newest first)."""
    latest = history[0] if history else None
    current = selectors.current_of(history)
    finding = {
        "key": f"certificates:{certificate.pk}",
        "section": "TLS",
        "label": f"Certificate {certificate.name} on {certificate.host}",
        "element": f"host:{certificate.host_id}",
    }
    failed = latest is not None and latest.outcome == Outcome.FAILED
    if current is None:
        return Finding(
            **finding,
            colour=Colour.RED if failed else Colour.AMBER,
            message=f"Never issued{': ' + latest.message if failed else ''}.",
            fix="Check the domain's DNS push, then renew the certificate.",
        )
    held = f"issued by {current.issuer}, valid until {current.not_after:%Y-%m-%d %H:%M} UTC"
    if current.not_after <= now:
        return Finding(
            **finding,
            colour=Colour.RED,
            message=f"Expired: {held}.",
            fix="Renew it now; clients refuse an expired certificate.",
        )
    if failed:
        return Finding(
            **finding,
            colour=Colour.RED,
            message=f"The last renewal failed ({latest.message}); the host keeps the one {held}.",
            fix="Check the domain's DNS push, then renew the certificate.",
        )
    due = datetime.timedelta(days=settings.MAILGATE_ACME_RENEW_DAYS)
    if current.not_after - now <= due:
        return Finding(
            **finding,
            colour=Colour.AMBER,
            message=f"Due for renewal: {held}.",
            fix="Renewals are not running: start Celery beat.",
        )
    return Finding(**finding, colour=Colour.GREEN, message=f"Valid: {held}.")
