"""Publishing a mailbox's key, with real gpg: the wrong address is refused, only the matching
user ID is published, private keys never get in, and a generated key is handed out once."""

import base64
import subprocess
import tempfile
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from gateway import services as directory
from keys import services
from keys.choices import WkdStatus
from keys.gpg import Keyring
from keys.models import OpenPGPKey
from tests.keys_world import (  # noqa: F401 (fixtures)
    keyring_fixture,
    show_keys,
    user_ids_of,
    world_fixture,
)
from tests.named import PASSWORD, alice_once, carol_once, family_once  # noqa: F401 (fixtures, once)


@pytest.fixture
def alice_box(family):
    return family.mailboxes.get(local_part="alice")


def test_it_refuses_a_key_for_another_address(world, alice_box):
    fingerprint = world.make_key("Mallory <mallory@family.example>")
    with pytest.raises(ValidationError, match=r"no user ID for alice@family\.example"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    assert not OpenPGPKey.objects.exists()


def test_it_publishes_only_the_matching_user_id(world, alice_box):
    fingerprint = world.make_key(
        "Alice Work <alice@work.example>",
        "Alice <Alice@Family.Example>",
        "Alice Old <alice@old.example>",
    )
    assert len(user_ids_of(world.export(fingerprint))) == 3
    key = services.openpgp_key_upload(
        mailbox=alice_box, key_data=world.export(fingerprint, armor=True)
    )
    assert key.fingerprint == fingerprint
    assert key.user_id == "Alice <Alice@Family.Example>"
    assert user_ids_of(bytes(key.wkd_key)) == ["Alice <Alice@Family.Example>"]
    assert user_ids_of(key.public_key.encode()) == ["Alice <Alice@Family.Example>"]
    assert user_ids_of(bytes(key.autocrypt_key)) == ["Alice <Alice@Family.Example>"]
    assert f"fpr:::::::::{fingerprint}:" in show_keys(bytes(key.wkd_key))


def test_it_accepts_a_binary_key_and_tracks_its_expiry(world, alice_box):
    fingerprint = world.make_key("alice@family.example", expire="1y")
    key = services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    assert abs(key.expires_at - (timezone.now() + timedelta(days=365))) < timedelta(days=2)
    assert key.wkd_status == WkdStatus.PUBLISHED


def test_it_replaces_the_same_key_when_uploaded_again(world, alice_box):
    fingerprint = world.make_key("alice@family.example", expire="1y")
    services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    world.gpg("--quick-set-expire", fingerprint, "3y")
    key = services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    assert OpenPGPKey.objects.get() == key
    assert key.expires_at > timezone.now() + timedelta(days=2 * 365)


def test_it_tracks_when_the_last_encryption_subkey_expires(world, alice_box):
    fingerprint = world.make_key("alice@family.example", usage="sign", expire="never")
    world.gpg("--passphrase", "", "--quick-add-key", fingerprint, "cv25519", "encr", "90d")
    key = services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    assert abs(key.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(days=2)


def test_it_marks_an_expired_key(world, alice_box):
    fingerprint = world.make_key("alice@family.example")
    key = services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    OpenPGPKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=1))
    key.refresh_from_db()
    assert key.wkd_status == WkdStatus.EXPIRED


def test_it_refuses_an_address_gpgs_filter_cannot_express(world, family):
    # "||" means "or" in gpg's --export-filter; local parts are no longer allowed "|", so only a
    # mailbox saved before that check has one, and it is refused before gpg sees it.
    mailbox = directory.mailbox_create(domain=family, local_part="ab", password=PASSWORD)
    type(mailbox).objects.filter(pk=mailbox.pk).update(local_part="a||b")
    mailbox.refresh_from_db()
    fingerprint = world.make_key("a||b@family.example", "Other <b@family.example>")
    with pytest.raises(ValidationError, match="cannot have an OpenPGP key"):
        services.openpgp_key_upload(mailbox=mailbox, key_data=world.export(fingerprint))
    assert not OpenPGPKey.objects.exists()


def test_it_keeps_the_user_id_as_written(world, family):
    mailbox = directory.mailbox_create(domain=family, local_part="-jo", password=PASSWORD)
    fingerprint = world.make_key("Jürgen: Ü <-Jo@Family.example>")
    key = services.openpgp_key_upload(mailbox=mailbox, key_data=world.export(fingerprint))
    assert key.user_id == "Jürgen: Ü <-Jo@Family.example>"  # gpg lists ":" as \x3a
    generated = services.openpgp_key_generate(mailbox=mailbox)
    assert generated.key.user_id == "-jo@family.example"


def test_it_refuses_a_user_id_with_a_control_character(world, alice_box):
    fingerprint = world.make_key("Alice\x1b[31m <alice@family.example>")
    with pytest.raises(ValidationError, match="control characters"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))


def test_it_refuses_a_key_that_cannot_encrypt(world, alice_box):
    fingerprint = world.make_key("alice@family.example", usage="sign")
    with pytest.raises(ValidationError, match="no encryption key"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))


def test_it_refuses_a_private_key_and_keeps_nothing_of_it(world, alice_box):
    fingerprint = world.make_key("alice@family.example")
    with pytest.raises(ValidationError, match="private key"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=world.export_secret(fingerprint))
    assert not OpenPGPKey.objects.exists()


def test_it_refuses_two_keys_at_once_and_what_is_no_key(world, alice_box):
    first = world.make_key("alice@family.example")
    second = world.make_key("Alice Two <alice@family.example>")
    both = world.export(first) + world.export(second)
    with pytest.raises(ValidationError, match="one key at a time"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=both)
    with pytest.raises(ValidationError, match="not an OpenPGP key"):
        services.openpgp_key_upload(mailbox=alice_box, key_data=b"hello")


def test_it_hands_out_a_generated_key_once_and_keeps_only_the_public_part(alice_box):
    generated = services.openpgp_key_generate(mailbox=alice_box, passphrase="s3cret words")
    key = generated.key
    assert generated.private_key.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert "revocation certificate" in generated.revocation_certificate
    assert key.fingerprint in generated.revocation_certificate.replace(" ", "")
    assert user_ids_of(bytes(key.wkd_key)) == ["alice@family.example"]
    stored = OpenPGPKey.objects.get(pk=key.pk)
    for field in ("public_key", "user_id", "fingerprint"):
        assert "PRIVATE" not in getattr(stored, field)
    # The download imports as a key with its secret part; the revocation does not sneak in.
    with tempfile.TemporaryDirectory(prefix="mg-import-") as home:
        gpg = ["gpg", "--homedir", home, "--batch", "--with-colons"]
        download = f"{generated.private_key}\n{generated.revocation_certificate}".encode()
        subprocess.run([*gpg, "--import"], input=download, check=True, capture_output=True)
        listing = subprocess.run([*gpg, "-K"], check=True, capture_output=True).stdout.decode()
        assert key.fingerprint in listing
        public = subprocess.run([*gpg, "-k"], check=True, capture_output=True).stdout.decode()
        assert "\npub:" in public and "\npub:r:" not in public  # imported, not revoked
        Keyring(home).stop_agent()


def test_it_protects_the_generated_key_with_the_passphrase(alice_box):
    generated = services.openpgp_key_generate(mailbox=alice_box, passphrase="s3cret words")
    with tempfile.TemporaryDirectory(prefix="mg-import-") as home:
        gpg = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback"]
        subprocess.run(
            [*gpg, "--import"],
            input=generated.private_key.encode(),
            check=True,
            capture_output=True,
        )
        message = f"{home}/message.txt"
        with open(message, "w") as handle:
            handle.write("hello")
        sign = [*gpg, "--passphrase-fd", "0", "--local-user", "alice@family.example"]
        sign += ["--output", "-", "--clearsign", message]
        wrong = subprocess.run(sign, input=b"wrong", capture_output=True)
        right = subprocess.run(sign, input=b"s3cret words", capture_output=True)
        Keyring(home).stop_agent()
    assert wrong.returncode != 0
    assert right.returncode == 0, right.stderr
    assert b"BEGIN PGP SIGNATURE" in right.stdout


def test_it_offers_the_autocrypt_header_of_the_minimal_key(world, alice_box):
    fingerprint = world.make_key("alice@family.example")
    key = services.openpgp_key_upload(mailbox=alice_box, key_data=world.export(fingerprint))
    header = key.autocrypt_header
    assert header.startswith("addr=alice@family.example; prefer-encrypt=mutual; keydata=")
    keydata = base64.b64decode(header.split("keydata=")[1])
    listing = show_keys(keydata)
    assert f"fpr:::::::::{fingerprint}:" in listing
    assert [line[:3] for line in listing.splitlines() if line[:3] in {"pub", "sub"}] == [
        "pub",
        "sub",
    ]


def test_it_serialises_access_to_mailgates_keyring(keyring):
    """Another holder of the lock (a second worker) makes gpg wait; nothing runs in between."""
    done = threading.Event()

    def list_keys():
        Keyring(keyring.home).list_keys()
        done.set()

    with keyring.locked():
        thread = threading.Thread(target=list_keys)
        thread.start()
        assert not done.wait(1.0)
    thread.join(timeout=30)
    assert done.is_set()
