"""Reading certificates for the pages, the API and the status page: each with its history,
newest first (keys left unread), and what the models need that has no row yet."""

from certs import names
from certs.choices import Outcome
from certs.models import Certificate, Issuance
from gateway.selectors import mail_domains
from hosts.models import Host


def wanted_now() -> list[names.Wanted]:
    """Every certificate the hosts and enabled domains need now (``certs.names``)."""
    return names.wanted(Host.objects.order_by("pk"), mail_domains())


def certificates_with_history() -> list[tuple[Certificate, list[Issuance]]]:
    """Every certificate with its issuances, newest first, in two queries."""
    certificates = list(Certificate.objects.select_related("host").order_by("host__name", "name"))
    issuances = histories(certificates)
    return [(certificate, issuances.get(certificate.pk, [])) for certificate in certificates]


def histories(certificates) -> dict[int, list[Issuance]]:
    """Each certificate's issuances (by its id), newest first, in one query."""
    issuances: dict[int, list[Issuance]] = {}
    for row in _issuances().filter(certificate__in=certificates):
        issuances.setdefault(row.certificate_id, []).append(row)
    return issuances


def history(certificate: Certificate) -> list[Issuance]:
    return list(_issuances().filter(certificate=certificate))


def current_of(history: list[Issuance]) -> Issuance | None:
    """The newest issued certificate of a history (newest first): what the host presents."""
    return next((row for row in history if row.outcome == Outcome.ISSUED), None)


def certificates_unlisted() -> list[names.Wanted]:
    """What the models need that has no certificate row yet: the next renewal run (or "Renew
    due certificates") adds and issues them."""
    listed = set(Certificate.objects.values_list("host_id", "name"))
    return [item for item in wanted_now() if (item.host_id, item.name) not in listed]


def _issuances():
    # The key is never read for a page; the chain is, for the download and the API.
    return Issuance.objects.defer("private_key").order_by("certificate_id", "-started_at", "-pk")
