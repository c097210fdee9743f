"""DKIM keys made by Mailgate: a message signed with the generated private key verifies (dkimpy)
against the record Mailgate published on a real BIND, before and after a rotation through two
selectors; the retired selector's record is removed and its signatures stop verifying."""

import dkim
import pytest
from django.core.exceptions import ValidationError

from tests.world import build_infrastructure
from tests.zones_named import KEY_NAME, running, zone_text
from zones import dkim as zones_dkim
from zones import services
from zones.models import DkimKey, PushTarget

MESSAGE = (
    b"From: Alice <alice@family.example>\r\n"
    b"To: Bob <bob@other.example>\r\n"
    b"Subject: DKIM through Mailgate\r\n"
    b"Message-ID: <rotation@family.example>\r\n"
    b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
    b"\r\n"
    b"Signed with a key Mailgate generated.\r\n"
)


@pytest.fixture
def named(family, tmp_path):
    build_infrastructure()
    zones = {"family.example": zone_text("family.example")}
    with running(tmp_path / "named", zones) as server:
        PushTarget.objects.create(
            domain=family,
            server="127.0.0.1",
            port=server.port,
            tsig_key_name=KEY_NAME,
            tsig_secret=server.secret,
        )
        yield server


def sign(key: DkimKey) -> bytes:
    signature = dkim.sign(
        MESSAGE,
        key.selector.encode(),
        key.domain.name.encode(),
        key.private_key.encode(),
        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
    )
    return signature + MESSAGE


def verifies(message: bytes, named) -> bool:
    """dkimpy's verification, its DNS questions answered by the test's named (no public DNS)."""

    def dnsfunc(name, timeout=5):
        return named.txt(name.decode().rstrip("."))

    return dkim.verify(message, dnsfunc=dnsfunc)


def push(family) -> None:
    services.push_apply(target=family.push_target)


def test_it_generates_an_rsa_2048_key_whose_halves_belong_together(family):
    key = services.dkim_key_generate(domain=family)
    assert "BEGIN PRIVATE KEY" in key.private_key
    assert zones_dkim.public_of(key.private_key) == key.public_key
    assert (
        dkim.crypto.parse_pem_private_key(key.private_key.encode())["modulus"].bit_length() == 2048
    )
    assert (key.selector, key.active, key.state) == ("dkim", True, "active")


def test_a_signed_message_verifies_before_and_after_a_rotation(family, named):
    old = services.dkim_key_generate(domain=family)
    push(family)
    signed_by_old = sign(old)
    assert verifies(signed_by_old, named)

    # 1. publish the new key: it does not sign yet, both records are in DNS
    new = services.dkim_key_generate(domain=family, selector="dkim2")
    assert (new.active, new.state) == (False, "published")
    push(family)
    assert named.txt("dkim2._domainkey.family.example").startswith(b"v=DKIM1; k=rsa; p=")
    # 2. switch signing
    new = services.dkim_key_activate(key=new)
    old.refresh_from_db()
    assert (old.active, new.active) == (False, True)
    signed_by_new = sign(new)
    assert verifies(signed_by_new, named)
    assert verifies(signed_by_old, named)  # mail signed before the switch still verifies
    # 3. retire the old key: the push removes its record, and the row goes with it
    services.dkim_key_retire(key=old)
    push(family)

    assert named.txt("dkim._domainkey.family.example") is None
    assert not verifies(signed_by_old, named)
    assert verifies(signed_by_new, named)
    assert list(DkimKey.objects.values_list("selector", flat=True)) == ["dkim2"]
    run = services.check_run(domain=family, lookup=named.lookup)
    # (this named serves no reverse zone: only the PTR checks are red)
    assert list(run.results.filter(status="fail").exclude(rtype="PTR")) == []


def test_it_refuses_to_retire_the_key_that_signs(family):
    key = services.dkim_key_generate(domain=family)
    with pytest.raises(ValidationError, match="still signs"):
        services.dkim_key_retire(key=key)


def test_it_chooses_a_free_selector_for_the_next_key(family):
    first = services.dkim_key_generate(domain=family)
    second = services.dkim_key_generate(domain=family)
    third = services.dkim_key_generate(domain=family)
    assert first.selector == "dkim"
    assert second.selector.startswith("dkim2") and len(second.selector) == len("dkim202611")
    assert third.selector == f"{second.selector}-2"
    assert [k.active for k in (first, second, third)] == [True, False, False]


def test_it_keeps_one_signing_key_per_domain(family):
    first = services.dkim_key_generate(domain=family)
    second = services.dkim_key_generate(domain=family)
    services.dkim_key_activate(key=second)
    assert list(DkimKey.objects.filter(active=True)) == [second]
    services.dkim_key_activate(key=first)
    assert list(DkimKey.objects.filter(active=True)) == [first]


def test_a_retired_key_shows_as_a_record_to_remove_until_it_is_gone(family, named):
    old = services.dkim_key_generate(domain=family)
    push(family)
    new = services.dkim_key_generate(domain=family)
    services.dkim_key_activate(key=new)
    services.dkim_key_retire(key=old)

    run = services.check_run(domain=family, lookup=named.lookup)
    stale = run.results.get(name="dkim._domainkey.family.example")
    assert stale.status == "fail"
    assert stale.message.startswith("dkim._domainkey.family.example TXT is still published: ")
    assert stale.fix.startswith("Remove it in the zone family.example")
