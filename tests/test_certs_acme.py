"""Certificates from a real ACME server: Pebble on loopback validates DNS-01 records that
Mailgate writes through its own RFC 2136 push into a real named, which Pebble asks."""

import datetime
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from certs import names, services, tasks
from certs.choices import Outcome
from certs.models import AcmeAccount, Certificate, Issuance
from certs.probes import certificate_findings
from gateway import services as gateway_services
from gateway.status import Colour
from hosts.models import Host, Tunnel
from hosts.render import mailu
from hosts.render.context import load_context
from tests import zones_named as dns_server
from tests.certs_world import (  # noqa: F401 (fixtures)
    issue_by_hand,
    leaf,
    pebble_fixture,
    san,
    verify,
    world_fixture,
    zone_fixture,
)
from zones.models import PushTarget

MAIL_NAMES = ["mail.family.example"]
GATEWAY_NAMES = [
    "autoconfig.family.example",
    "autodiscover.family.example",
    "mail.family.example",
    "mta-sts.family.example",
    "openpgpkey.family.example",
]


def test_it_derives_every_name_from_the_models(world, family, other):
    found = names.wanted([world["vps"], world["home"]], [family, other])
    wanted = {(w.purpose, w.name): w.names for w in found}
    assert wanted == {
        ("mail", "mail.family.example"): ("mail.family.example",),
        ("mail", "mail.other.example"): ("mail.other.example",),
        ("gateway", "mail.family.example"): (
            "mail.family.example",
            *(
                f"{prefix}.{domain}.example"
                for prefix in ("autoconfig", "autodiscover")
                for domain in ("family", "other")
            ),
            "mta-sts.family.example",
            "mta-sts.other.example",
            "openpgpkey.family.example",
            "openpgpkey.other.example",
        ),
    }


def test_a_mailu_server_gets_one_certificate_for_every_name_of_hostnames(world, family, other):
    world["vps"].gateway_proxy = "traefik-haproxy"  # Traefik gets its own
    world["home"].mail_backend = "mailu"
    world["home"].fqdn = "home.family.example"
    found = names.wanted([world["vps"], world["home"]], [family, other])
    hostnames = ("home.family.example", "mail.family.example", "mail.other.example")
    assert found == [names.Wanted(world["home"].pk, "mailu", hostnames[0], hostnames)]
    assert mailu.mail_hostnames(load_context(world["home"])) == list(hostnames)


def test_it_derives_nothing_for_a_host_with_its_own_certificate_file(world, family):
    for host in (world["vps"], world["home"]):
        host.tls_certificate_path = "/etc/ssl/own.pem"
    assert names.wanted([world["vps"], world["home"]], [family]) == []


def test_it_issues_every_certificate_over_dns01_and_removes_the_challenges(
    world, pebble, zone, tmp_path
):
    issued = services.certificates_renew()
    assert [i.outcome for i in issued] == [Outcome.ISSUED, Outcome.ISSUED], issued[0].message
    by_purpose = {i.certificate.purpose: i for i in issued}
    assert san(by_purpose["mail"]) == sorted(MAIL_NAMES)
    assert san(by_purpose["gateway"]) == sorted(GATEWAY_NAMES)
    for issuance in issued:
        result = verify(issuance, pebble.root, tmp_path)
        assert result.returncode == 0, result.stderr
        assert (
            "Pebble" in issuance.issuer and issuance.serial == f"{leaf(issuance).serial_number:x}"
        )
        key = serialization.load_pem_private_key(issuance.private_key.encode(), None)
        assert key.public_key() == leaf(issuance).public_key()
    for name in MAIL_NAMES + GATEWAY_NAMES:
        assert zone.values(f"_acme-challenge.{name}", "TXT") == []
    assert services.certificates_renew() == []  # nothing is due: nothing is ordered
    findings = list(certificate_findings())
    assert [f.colour for f in findings] == [Colour.GREEN, Colour.GREEN]
    assert all("issued by CN=Pebble Intermediate CA" in f.message for f in findings)


def test_it_renews_when_30_days_are_left(world, pebble):
    beat = settings.CELERY_BEAT_SCHEDULE["certs-certificates-renew"]
    assert beat["task"] == "certs.tasks.certificates_renew"
    assert tasks.certificates_renew() == 2  # the task beat runs: both are new
    assert tasks.certificates_renew() == 0
    [first, _] = Issuance.objects.order_by("pk")
    certificate = first.certificate
    assert not services.certificate_due(certificate)
    assert not services.certificate_due(
        certificate, now=first.not_after - datetime.timedelta(days=31)
    )
    assert services.certificate_due(certificate, now=first.not_after - datetime.timedelta(days=30))


def test_a_failed_challenge_keeps_the_old_certificate_and_shows_red(world, pebble, tmp_path):
    [first, _] = services.certificates_renew()
    # The push now goes to a server the CA does not ask: the CA finds no record.
    with dns_server.running(
        tmp_path / "elsewhere", {"family.example": dns_server.zone_text("family.example")}
    ) as elsewhere:
        PushTarget.objects.update(port=elsewhere.port, tsig_secret=elsewhere.secret)
        attempt = services.certificate_force_renewal(certificate=first.certificate)
    assert attempt.outcome == Outcome.FAILED
    assert "The CA refused the challenges" in attempt.message
    assert "_acme-challenge.mail.family.example" in attempt.message
    certificate = Certificate.objects.get(pk=first.certificate_id)
    assert certificate.current.pk == first.pk and certificate.latest.pk == attempt.pk
    [finding] = [f for f in certificate_findings() if f.key == f"certificates:{certificate.pk}"]
    assert finding.colour == Colour.RED
    assert "the host keeps the one issued by" in finding.message


def test_it_says_to_set_up_the_dns_push_behind_a_traefik_gateway(world, pebble):
    """Traefik owns the gateway's port 80 (its own ACME resolver answers HTTP-01 there), so a
    name without a DNS push cannot be validated by Mailgate through it."""
    PushTarget.objects.all().delete()
    Host.objects.filter(pk=world["vps"].pk).update(gateway_proxy="traefik-haproxy")
    [attempt] = services.certificates_renew()  # the mail server's: Traefik's are its own
    assert attempt.outcome == Outcome.FAILED
    assert attempt.message == (
        "mail.family.example lies in no zone Mailgate pushes to, and the gateway vps runs "
        "Traefik, which answers HTTP-01 on port 80 itself, so Mailgate cannot answer it there: "
        "set up the DNS push of family.example (DNS → push) so that Mailgate can answer DNS-01."
    )
    assert next(iter(certificate_findings())).colour == Colour.RED


def test_it_says_to_set_up_the_dns_push_without_a_gateway(world, pebble):
    PushTarget.objects.all().delete()
    Tunnel.objects.all().delete()
    Host.objects.filter(pk=world["vps"].pk).delete()
    [attempt] = services.certificates_renew()
    assert attempt.outcome == Outcome.FAILED
    assert "and there is no gateway to answer HTTP-01 for it: set up the DNS push" in (
        attempt.message
    )


def test_an_expired_certificate_is_red_on_the_status_page(world, client, owner):
    [certificate, _] = services.certificates_sync()
    issue_by_hand(certificate, days_left=-1)
    # Only the certificates' probe: the others would ask the world's hosts over the network.
    gateway_services.status_refresh(probes=["certificates"])
    client.force_login(owner)
    page = client.get(reverse("gateway:status")).content.decode()
    assert f"Certificate {certificate.name} on home" in page
    assert "Expired: issued by CN=mail.family.example" in page
    assert "Renew it now" in page


def test_it_never_logs_or_shows_a_key(world, pebble, caplog, client, owner):
    with caplog.at_level(logging.DEBUG):
        issued = services.certificates_renew()
    account = AcmeAccount.objects.get()
    secrets = [account.key, *(i.private_key for i in issued)]
    bodies = [s.split("-----")[2].strip().splitlines()[1] for s in secrets]
    assert "PRIVATE KEY" not in caplog.text
    assert not any(body in caplog.text for body in bodies)
    with connection.cursor() as cursor:  # stored encrypted, never in plain text
        cursor.execute(
            "SELECT private_key FROM certs_issuance UNION SELECT key FROM certs_acmeaccount"
        )
        assert not any("PRIVATE KEY" in row[0] for row in cursor.fetchall())
    client.force_login(owner)
    page = client.get(reverse("admin:certs_issuance_change", args=[issued[0].pk])).content.decode()
    assert "PRIVATE KEY" not in page and bodies[1] not in page


def test_the_command_lists_renews_and_forces_a_renewal(world, pebble, capsys):
    call_command("certificates", "renew")
    assert capsys.readouterr().out.count("Issued by CN=Pebble Intermediate CA") == 2
    call_command("certificates", "renew")
    assert capsys.readouterr().out.count(": not due") == 2
    call_command("certificates", "renew", "--force", "mail.family.example")
    assert capsys.readouterr().out.count("Issued by") == 2  # on the gateway and the mail server
    call_command("certificates", "list")
    listed = capsys.readouterr().out
    assert "home mail.family.example (mail.family.example): CN=Pebble" in listed
    assert "CN=Pebble Intermediate CA" in listed and "FAILED" not in listed
    with pytest.raises(CommandError, match="No certificate is named"):
        call_command("certificates", "renew", "nothing.example")
