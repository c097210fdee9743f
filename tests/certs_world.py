"""The certificate tests' world: a real named holding the test zones, Pebble asking it, and
the reference infrastructure (a HAProxy gateway, a Postfix + Dovecot home server) with the
domain's zone pushed to that named over RFC 2136."""

import pytest
from django.test import override_settings

from tests import pebble as acme_server
from tests import zones_named as dns_server
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
    with (
        acme_server.running(tmp_path / "pebble", zone.port) as server,
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
