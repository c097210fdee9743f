"""DNSSEC status from a real validating resolver: a BIND signs family.example itself, a second
BIND validates it with the zone's key as its trust anchor. Validated is green; a wrong anchor
(a broken chain of trust) is red for the zone and for every record; signed but asked without
validation is a warning; unsigned is a note, or red when TLSA depends on it."""

import pytest

from tests.world import build_infrastructure
from tests.zones_named import KEY_NAME, resolving, running, zone_text
from zones import services
from zones.checks import _dnssec_status
from zones.models import PushTarget
from zones.resolver import Answer, Lookup

# A valid ECDSA P-256 key, but not the zone's: validation must fail.
WRONG_KEY = (
    "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
    "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
)


@pytest.fixture
def signed(family, tmp_path):
    build_infrastructure()
    zones = {"family.example": zone_text("family.example")}
    with running(tmp_path / "auth", zones, signed=("family.example",)) as named:
        target = PushTarget.objects.create(
            domain=family,
            server="127.0.0.1",
            port=named.port,
            tsig_key_name=KEY_NAME,
            tsig_secret=named.secret,
        )
        services.push_apply(target=target)
        yield named


def dnssec(run):
    return run.results.get(kind="dnssec")


def test_a_validating_resolver_reports_the_zone_validated(family, signed, tmp_path):
    anchors = {"family.example": signed.dnskey("family.example")}
    with resolving(tmp_path / "resolver", signed, anchors) as port:
        run = services.check_run(domain=family, lookup=Lookup([("127.0.0.1", port)]))
    assert run.dnssec == "validated"
    assert dnssec(run).status == "ok"
    failed = run.results.filter(status="fail").exclude(rtype="PTR")
    assert list(failed) == []  # the records came through validation too


def test_a_broken_chain_of_trust_is_red(family, signed, tmp_path):
    with resolving(tmp_path / "resolver", signed, {"family.example": WRONG_KEY}) as port:
        run = services.check_run(domain=family, lookup=Lookup([("127.0.0.1", port)]))
    assert run.dnssec == "bogus"
    assert dnssec(run).status == "fail"
    assert "broken chain of trust" in dnssec(run).message
    mx = run.results.get(name="family.example", rtype="MX")
    assert mx.message == "Could not check: the resolver failed to answer (SERVFAIL)."


def test_a_signed_zone_asked_without_validation_is_a_warning(family, signed):
    run = services.check_run(domain=family, lookup=signed.lookup)
    assert run.dnssec == "signed"
    assert dnssec(run).status == "warn"


def test_tlsa_without_a_signed_zone_is_red():
    status, message, _ = _dnssec_status(Answer(), tlsa=True)
    assert status == "fail" and "ignore its TLSA record" in message
    assert _dnssec_status(Answer(), tlsa=False)[0] == "info"
