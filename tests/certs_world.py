"""The certificate tests' world: a real named holding the test zones, Pebble asking it, and
the reference infrastructure (a HAProxy gateway, a Postfix + Dovecot home server) with the
domain's zone pushed to that named over RFC 2136."""

import contextlib
import datetime
import subprocess

import pytest
from cryptography import x509
from django.test import override_settings
from django.utils import timezone

from certs.choices import Outcome
from certs.models import Certificate, Issuance
from tests import pebble as acme_server
from tests import zones_named as dns_server
from tests.helpers import self_signed
from tests.world import build_infrastructure
from zones.models import PushTarget

ZONES = ("family.example", "other.example")


@pytest.fixture(name="zone")
def zone_fixture(tmp_path):
    zones = {name: dns_server.zone_text(name) for name in ZONES}
    with dns_server.running(tmp_path / "named", zones) as server:
        yield server


@pytest.fixture(name="pebble")
def pebble_fixture(tmp_path, zone):
    with acme_for_mailgate(tmp_path, zone) as server:
        yield server


@contextlib.contextmanager
def acme_for_mailgate(tmp_path, zone, *, http_port: int = 0):
    """Pebble asking ``zone``'s named, as Mailgate's ACME server until the block ends."""
    with (
        acme_server.running(tmp_path / "pebble", zone.port, http_port=http_port) as server,
        override_settings(
            MAILGATE_ACME_DIRECTORY=server.directory, MAILGATE_ACME_CA_FILE=str(server.ca_file)
        ),
    ):
        yield server


@pytest.fixture(name="world")
def world_fixture(family, zone):
    infrastructure = build_infrastructure()
    push_to(family, zone)
    return infrastructure


def push_to(domain, zone) -> PushTarget:
    """The domain's zone is pushed to the test's named over RFC 2136."""
    return PushTarget.objects.create(
        domain=domain,
        server=dns_server.ADDRESS,
        port=zone.port,
        tsig_key_name=dns_server.KEY_NAME,
        tsig_secret=zone.secret,
    )


def issue_by_hand(certificate: Certificate, *, days_left: int, **fields) -> Issuance:
    """An issued certificate in the history without asking a CA (the pages only read it)."""
    fullchain, key = self_signed(certificate.name, valid_from=-1, valid_until=days_left)
    return Issuance.objects.create(
        certificate=certificate,
        outcome=Outcome.ISSUED,
        names=certificate.names,
        fullchain=fullchain,
        private_key=key,
        serial="1f2e3d",
        issuer=f"CN={certificate.name}",
        not_before=timezone.now() - datetime.timedelta(days=1),
        not_after=timezone.now() + datetime.timedelta(days=days_left),
        **fields,
    )


def leaf(issuance: Issuance) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issuance.fullchain.encode())


def san(issuance: Issuance) -> list[str]:
    extension = leaf(issuance).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return sorted(extension.value.get_values_for_type(x509.DNSName))


def verify(issuance: Issuance, root: str, tmp_path) -> subprocess.CompletedProcess:
    """openssl's own verdict on the chain, up to Pebble's root."""
    (tmp_path / "root.pem").write_text(root)
    (tmp_path / "fullchain.pem").write_text(issuance.fullchain)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "fullchain.pem"),
            str(tmp_path / "fullchain.pem"),
        ],
        capture_output=True,
        text=True,
    )
