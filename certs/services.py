"""Workflows of the certificates app: which certificates the setup needs, getting them over
ACME, and renewing them when ``MAILGATE_ACME_RENEW_DAYS`` are left.

Getting a certificate is recorded as an ``Issuance`` whatever happens; a failed attempt keeps
the certificate the host presents (the newest issued one) and is shown red on the status page.
A new certificate is a change of the host's bundle: convergence deploys it like any other
(``hosts.services.change_committed``), with its staged checks (``certs.deploy``).
"""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from certs import issuer, names
from certs.choices import Outcome, Trigger
from certs.models import AcmeAccount, Certificate, Issuance
from gateway.queueing import after_commit
from gateway.selectors import mail_domains
from hosts.models import Host
from hosts.services import change_committed
from zones.models import PushTarget
from zones.selectors import dns_facts, mail_gateway

logger = logging.getLogger(__name__)


def certificates_sync() -> list[Certificate]:
    """Make the certificate rows match what the models need now (``certs.names``): new ones
    are added, changed name lists updated (the next run reissues them), unneeded ones removed
    (the next deployment removes their files)."""
    wanted = names.wanted(Host.objects.order_by("pk"), mail_domains())
    kept = []
    with transaction.atomic():
        for item in wanted:
            certificate, _ = Certificate.objects.update_or_create(
                host_id=item.host_id,
                name=item.name,
                defaults={"purpose": item.purpose, "names": list(item.names)},
            )
            kept.append(certificate)
        Certificate.objects.exclude(pk__in=[c.pk for c in kept]).delete()
    return kept


def certificate_due(certificate: Certificate, *, now: datetime.datetime | None = None) -> bool:
    """Whether the certificate must be (re)issued now."""
    current = certificate.current
    if certificate.force_renewal or current is None or current.names != certificate.names:
        return True
    left = current.not_after - (now or timezone.now())
    return left <= datetime.timedelta(days=settings.MAILGATE_ACME_RENEW_DAYS)


def certificates_renew(*, trigger: str = Trigger.SCHEDULE) -> list[Issuance]:
    """Celery beat's run: every certificate that is due gets a new one."""
    return [
        certificate_issue(certificate=certificate, trigger=trigger)
        for certificate in certificates_sync()
        if certificate_due(certificate)
    ]


def certificate_force_renewal(*, certificate: Certificate) -> Issuance:
    """Issue a new certificate now, however long the current one has left."""
    Certificate.objects.filter(pk=certificate.pk).update(force_renewal=True)
    return certificate_issue(certificate=certificate, trigger=Trigger.FORCED)


def certificate_renewal_request(*, certificate: Certificate, trigger: str) -> None:
    """Renew ``certificate`` in the background, however long it has left (the page's and the
    API's "Renew now"). It is marked for the next run too, so a worker that is down now still
    renews it once it is back."""
    Certificate.objects.filter(pk=certificate.pk).update(force_renewal=True)
    after_commit("certs.tasks.certificate_renew", certificate.pk, trigger)


def certificates_renewal_request(*, trigger: str) -> None:
    """Run the renewal of every certificate that is due in the background now, as beat does."""
    after_commit("certs.tasks.certificates_renew", trigger)


def certificate_issue(*, certificate: Certificate, trigger: str = Trigger.UI) -> Issuance:
    """Order a certificate for ``certificate.names`` with a new key, answer DNS-01 through the
    DNS push (HTTP-01 through the gateway where there is none), and keep the result (or why it
    failed) in the certificate's history."""
    attempt = Issuance.objects.create(
        certificate=certificate, trigger=trigger, names=list(certificate.names)
    )
    try:
        issued = _acme().issue(list(certificate.names), issuer.new_private_key(), _challenges())
    except issuer.IssueError as exc:
        _conclude(attempt, outcome=Outcome.FAILED, message=str(exc))
        logger.warning("certificate for %s not issued: %s", certificate.name, exc)
        return attempt
    with transaction.atomic():
        _conclude(
            attempt,
            outcome=Outcome.ISSUED,
            message=f"Issued by {issued.issuer}, serial {issued.serial}.",
            fullchain=issued.fullchain,
            private_key=issued.private_key,
            serial=issued.serial,
            issuer=issued.issuer,
            not_before=issued.not_before,
            not_after=issued.not_after,
        )
        Certificate.objects.filter(pk=certificate.pk).update(force_renewal=False)
        change_committed(infrastructure=False)
    logger.info("certificate for %s issued, serial %s", certificate.name, issued.serial)
    return attempt


def _conclude(attempt: Issuance, **fields) -> None:
    for name, value in fields.items():
        setattr(attempt, name, value)
    attempt.finished_at = timezone.now()
    attempt.save()


def _challenges() -> issuer.Challenges:
    targets = {target.zone: target for target in PushTarget.objects.select_related("domain")}
    return issuer.Challenges(issuer.PushChallenges(dns_facts(), targets), mail_gateway())


def _acme() -> issuer.Acme:
    """The ACME server of ``MAILGATE_ACME_DIRECTORY``, as Mailgate's account there (registered
    on first use, its key kept encrypted)."""
    directory = settings.MAILGATE_ACME_DIRECTORY
    verify = settings.MAILGATE_ACME_CA_FILE or True
    with transaction.atomic():
        account, _ = AcmeAccount.objects.select_for_update().get_or_create(
            directory=directory, defaults={"key": issuer.new_account_key()}
        )
        acme = issuer.Acme(
            directory=directory, account_key=account.key, account_uri=account.uri, verify=verify
        )
        if not account.uri:
            account.uri = acme.register(settings.MAILGATE_ACME_EMAIL)
            account.save(update_fields=["uri"])
    return acme
