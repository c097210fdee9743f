"""ProtonCA trust with real gpg and a throwaway CA standing in for it: the pinned CA makes the
keys it certifies fully valid, a CA with another fingerprint is refused, and a certification
that has lapsed (gpg run with --faked-system-time) raises an alert."""

import contextlib
import http.server
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from celery import Celery
from django.core.exceptions import ValidationError
from django.core.management import call_command

from keys import services, tasks
from keys.choices import AlertKind, Validity
from keys.gpg import CERTIFIER_USER_ID, Keyring
from keys.models import CertificationAlert, ContactKey, TrustAnchor
from tests.keys_world import keyring_fixture, world_fixture  # noqa: F401

SIX_MONTHS = timedelta(seconds=15_552_000)  # gpg's "6m": 180 days


@pytest.fixture
def ca(world, settings):
    """A CA key pinned in place of ProtonCA's (the setting holds it lowercase, as the default)."""
    fingerprint = world.make_key("Fake ProtonCA <openpgp-ca@proton.example>", usage="cert")
    settings.MAILGATE_PROTONCA_FINGERPRINT = fingerprint.lower()
    return fingerprint


@pytest.fixture
def joe(world, ca):
    """A Proton user's key, certified by the CA for six months."""
    fingerprint = world.make_key("Joe <joe@proton.example>")
    world.certify(ca, fingerprint, expire="6m")
    return fingerprint


def certification_of(world, ca: str, fingerprint: str) -> tuple[datetime, datetime]:
    listing = world.gpg("--with-colons", "--check-sigs", fingerprint).decode()
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "sig" and fields[12] == ca:
            return (
                datetime.fromtimestamp(int(fields[5]), UTC),
                datetime.fromtimestamp(int(fields[6]), UTC),
            )
    raise AssertionError("no certification by the CA")


def test_it_makes_the_cas_certified_keys_fully_valid(db, keyring, world, ca, joe):
    anchor = services.trust_anchor_import(key_data=world.export(ca, armor=True))
    assert anchor.fingerprint == ca and anchor.name == "ProtonCA"
    contact = services.contact_key_import(key_data=world.export(joe), label="Joe")
    assert contact.validity == Validity.FULL
    assert contact.user_ids == ["Joe <joe@proton.example>"]
    assert keyring.ownertrust()[ca] == 5  # TRUST_FULLY
    certifier = keyring.certifier()
    [ca_key] = keyring.check_signatures(ca)
    local = [sig for sig in ca_key.user_ids[0].signatures if sig.made_by(certifier)]
    assert [sig.sig_class for sig in local] == ["10l"]  # a local, non-exportable certification
    assert keyring.list_keys(certifier, secret=True)[0].user_ids[0].text == CERTIFIER_USER_ID
    assert not CertificationAlert.objects.exists()


def test_it_leaves_a_key_the_ca_did_not_certify_unvalidated(db, keyring, world, ca):
    services.trust_anchor_import(key_data=world.export(ca))
    stranger = world.make_key("Stranger <stranger@elsewhere.example>")
    contact = services.contact_key_import(key_data=world.export(stranger))
    assert contact.validity not in {Validity.FULL, Validity.ULTIMATE, Validity.MARGINAL}


def test_it_refuses_a_ca_key_whose_fingerprint_is_not_the_pinned_one(db, keyring, world, ca):
    impostor = world.make_key("Fake ProtonCA <openpgp-ca@proton.example>", usage="cert")
    with pytest.raises(ValidationError, match=f"not the pinned {ca}"):
        services.trust_anchor_import(key_data=world.export(impostor))
    assert not TrustAnchor.objects.exists()
    assert impostor not in {key.fingerprint for key in keyring.list_keys()}


def test_it_without_an_anchor_leaves_the_ca_certified_key_unvalidated(db, keyring, world, joe):
    contact = services.contact_key_import(key_data=world.export(joe))
    assert contact.validity != Validity.FULL


def test_it_alerts_when_the_certification_has_lapsed(db, keyring, world, ca, joe):
    services.trust_anchor_import(key_data=world.export(ca))
    contact = services.contact_key_import(key_data=world.export(joe))
    created, expires = certification_of(world, ca, joe)
    assert expires - created == SIX_MONTHS

    assert services.certifications_check() == []
    assert services.certifications_check(now=expires - timedelta(days=31)) == []

    [soon] = services.certifications_check(now=expires - timedelta(days=20))
    assert (soon.kind, soon.expires_at, soon.contact_key) == (AlertKind.EXPIRING, expires, contact)

    [lapsed] = services.certifications_check(now=expires + timedelta(days=1))
    assert lapsed.kind == AlertKind.EXPIRED
    assert lapsed.user_id == "Joe <joe@proton.example>"
    assert lapsed.trust_anchor.fingerprint == ca
    assert CertificationAlert.objects.get().kind == AlertKind.EXPIRED


def test_it_reports_alerts_from_the_command_and_the_task(db, keyring, world, ca, joe):
    services.trust_anchor_import(key_data=world.export(ca))
    services.contact_key_import(key_data=world.export(joe))
    _, expires = certification_of(world, ca, joe)
    out, err = StringIO(), StringIO()
    at = (expires + timedelta(days=2)).isoformat()
    call_command("keys", "check", "--at", at, stdout=out, stderr=err)
    assert "Certification expired: Joe <joe@proton.example>" in out.getvalue()
    assert "1 alert(s)." in out.getvalue()
    assert tasks.certifications_check.apply().get() == 0  # today: valid for months yet
    assert not CertificationAlert.objects.exists()


def test_it_rebuilds_a_lost_keyring_from_the_database(db, keyring, world, ca, joe, settings):
    services.trust_anchor_import(key_data=world.export(ca))
    services.contact_key_import(key_data=world.export(joe))
    keyring.stop_agent()
    for path in sorted(keyring.home.iterdir(), reverse=True):
        if path.is_file():
            path.unlink()
    services.certifications_check()
    assert ContactKey.objects.get().validity == Validity.FULL
    assert keyring.ownertrust()[ca] == 5


def test_it_forgets_the_trust_when_the_anchor_goes(db, keyring, world, ca, joe):
    anchor = services.trust_anchor_import(key_data=world.export(ca))
    services.contact_key_import(key_data=world.export(joe))
    services.trust_anchor_delete(anchor=anchor)
    assert ContactKey.objects.get().validity != Validity.FULL
    assert ca not in {key.fingerprint for key in keyring.list_keys()}


@contextlib.contextmanager
def wkd_server(served: bytes):
    """A real HTTP server on loopback standing in for openpgpkey.<domain>: any path, one key."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(served)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/openpgpkey/hu/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_it_fetches_the_ca_key_over_http(db, keyring, world, ca):
    with wkd_server(world.export(ca)) as url:
        anchor = services.trust_anchor_fetch_protonca(url=url)
    assert anchor.fingerprint == ca
    with pytest.raises(ValidationError, match="could not be fetched"):
        services.trust_anchor_fetch_protonca(url=url)  # the server is gone


def test_it_clears_the_alert_when_the_key_is_fetched_again_with_a_renewal(
    db, keyring, world, ca, joe
):
    services.trust_anchor_import(key_data=world.export(ca))
    _, expires = certification_of(world, ca, joe)
    with wkd_server(world.export(joe)) as url:
        services.contact_key_fetch(address="joe@proton.example", label="Joe", url=url)
        assert len(services.certifications_check(now=expires - timedelta(days=10))) == 1
        world.certify(ca, joe, at=expires - timedelta(days=30))
    with wkd_server(world.export(joe)) as url:
        contact = services.contact_key_fetch(address="joe@proton.example", url=url)
    assert contact.label == "Joe" and contact.validity == Validity.FULL
    assert services.certifications_check(now=expires - timedelta(days=10)) == []
    [lapsed] = services.certifications_check(now=expires + SIX_MONTHS)
    assert lapsed.expires_at == expires - timedelta(days=30) + SIX_MONTHS


def test_it_keeps_a_fresh_keyring_private(db, settings, tmp_path):
    home = tmp_path / "gnupg"
    Keyring(home).list_keys()
    assert home.stat().st_mode & 0o777 == 0o700


@pytest.mark.django_db(transaction=True)
def test_it_raises_the_alert_on_a_real_worker(start_worker, keyring, world, ca, settings):
    """The periodic task on a Celery worker, with today's clock: a certification that ends in
    ten days is reported."""
    soon = world.make_key("Soon <soon@proton.example>")
    world.certify(ca, soon, expire="10d")
    services.trust_anchor_import(key_data=world.export(ca))
    services.contact_key_import(key_data=world.export(soon))
    CertificationAlert.objects.all().delete()
    broker = settings.CELERY_BROKER_URL
    start_worker(
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        MAILGATE_GNUPGHOME=str(keyring.home),
    )
    app = Celery(broker=broker, backend=broker, set_as_current=False)
    app.control.purge()  # nothing left over from an earlier, interrupted run
    result = app.send_task("keys.tasks.certifications_check")
    assert result.get(timeout=60) == 1
    alert = CertificationAlert.objects.get()
    assert (alert.kind, alert.user_id) == (AlertKind.EXPIRING, "Soon <soon@proton.example>")
