"""Workflows on OpenPGP keys: publishing a mailbox's key, generating one, trusting ProtonCA,
importing contacts' keys and watching their certifications expire.

Uploaded keys are read in a throwaway keyring, so nothing a user sends reaches the keyring that
holds Mailgate's trust decisions; only a trust anchor (after its fingerprint matched the pin) and
contact keys (one key each, re-exported) are imported there. The database is the source of
truth: ``certifications_check`` puts back into the keyring whatever it lacks.
"""

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.models import Mailbox
from gateway.queueing import after_commit
from gateway.scoping import acts_as_owner
from gateway.validators import to_address
from keys import wkd
from keys.choices import AlertKind
from keys.colons import KeyInfo, ascii_lower
from keys.gpg import GpgError, Keyring
from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor

MAX_KEY_BYTES = wkd.MAX_KEY_BYTES
ALERT_WINDOW = timedelta(days=30)  # ProtonCA renews about a month before a certification ends
PROTONCA_ADDRESS = "openpgp-ca@proton.me"
FULL = "TRUST_FULLY"  # python-gnupg's name for ownertrust 5


@dataclass(frozen=True)
class GeneratedKey:
    """A key made for a mailbox. The private key and revocation certificate exist only here:
    they are handed to the person once and never stored."""

    key: OpenPGPKey
    private_key: str
    revocation_certificate: str


# --- mailboxes' keys -----------------------------------------------------------------------------


def openpgp_key_upload(*, mailbox: Mailbox, key_data: bytes) -> OpenPGPKey:
    """Publish a public key (armored or binary) for ``mailbox``. Refused unless it is one public
    key with a user ID for the mailbox's address; only that user ID is kept."""
    _check_address(mailbox)
    with Keyring.temporary() as scratch:
        info = _import_one(scratch, key_data)
        return _save_mailbox_key(scratch, mailbox, info)


def openpgp_key_generate(*, mailbox: Mailbox, passphrase: str = "") -> GeneratedKey:
    """Make a Curve25519 key for ``mailbox`` (valid two years) in a throwaway keyring, publish
    its public part, and return the private key and revocation certificate once."""
    _check_address(mailbox)
    with Keyring.temporary() as scratch:
        fingerprint = scratch.generate(mailbox.address, passphrase=passphrase)
        key = _save_mailbox_key(scratch, mailbox, scratch.key(fingerprint))
        return GeneratedKey(
            key=key,
            private_key=scratch.export_secret(fingerprint, passphrase=passphrase),
            revocation_certificate=scratch.revocation_certificate(fingerprint),
        )


def _check_address(mailbox: Mailbox) -> None:
    """A mailbox saved before addresses were checked as now (``#x``) would reach gpg, which
    reads ``#``, ``<`` or ``=`` at the start of a user ID as its own syntax: refuse it first."""
    try:
        to_address(mailbox.address)
    except ValidationError as exc:
        raise ValidationError(
            f"{mailbox.address!r} cannot have an OpenPGP key until it is renamed: "
            + " ".join(exc.messages)
        ) from None


def _save_mailbox_key(scratch: Keyring, mailbox: Mailbox, info: KeyInfo) -> OpenPGPKey:
    address = mailbox.address
    matching = info.user_ids_for(address)
    if not matching:
        found = ", ".join(uid.text for uid in info.user_ids) or "none"
        raise ValidationError(
            f"This key has no user ID for {address} (its user IDs: {found}). "
            "Add one to the key (gpg --quick-add-uid) or upload it for the right mailbox."
        )
    if not info.can_encrypt:
        raise ValidationError("This key has no encryption key: nobody could write to you with it.")
    key = OpenPGPKey.objects.filter(mailbox=mailbox, fingerprint=info.fingerprint).first()
    key = key or OpenPGPKey(mailbox=mailbox, fingerprint=info.fingerprint)
    key.user_id = matching[0].text
    key.wkd_key, key.public_key, key.autocrypt_key = _exports(scratch, info.fingerprint, address)
    key.expires_at = info.usable_until
    key.full_clean()
    key.save()
    return key


def _exports(scratch: Keyring, fingerprint: str, address: str) -> tuple[bytes, str, bytes]:
    """The key for WKD (binary), for the page (armored) and for Autocrypt (minimal), each with
    the user IDs of ``address`` alone, checked by listing what gpg exported."""
    # WKD gets the key as its owner made it, minus the other user IDs (gpg applies the same
    # keep-uid filter when it imports from WKD). Not export-minimal: that would also drop the
    # third-party certifications on this user ID (a CA's, a friend's), which are what lets a
    # correspondent find the key valid; this is the owner's own upload, so nobody else can
    # flood it with signatures. Autocrypt's copy rides in every message header: that one is
    # minimal, as Autocrypt Level 1 asks.
    try:
        wkd_key = scratch.export(fingerprint, address=address)
        armored = scratch.export(fingerprint, address=address, armor=True).decode()
        minimal = scratch.export(fingerprint, address=address, minimal=True)
    except GpgError as exc:
        raise ValidationError(f"gpg could not export the key for {address}: {exc}") from None
    for exported in (wkd_key, minimal):
        mailboxes = {uid.mailbox for key in scratch.show(exported) for uid in key.user_ids}
        if mailboxes != {ascii_lower(address)}:
            raise ValidationError(f"gpg could not keep only the user ID of {address}.")
    return wkd_key, armored, minimal


def _import_one(keyring: Keyring, key_data: bytes) -> KeyInfo:
    """Import ``key_data`` into a (throwaway) keyring: exactly one public key, or refused."""
    if not key_data.strip():
        raise ValidationError("Upload or paste a public key.")
    if len(key_data) > MAX_KEY_BYTES:
        raise ValidationError(f"A key larger than {MAX_KEY_BYTES} bytes is not accepted.")
    try:
        keyring.import_keys(key_data)
    except GpgError as exc:
        raise ValidationError(str(exc)) from None
    if keyring.list_keys(secret=True):
        raise ValidationError(
            "This is a private key. Nothing was stored; upload only the public key "
            "(gpg --export --armor <address>)."
        )
    keys = keyring.list_keys()
    if len(keys) != 1:
        raise ValidationError(f"Upload one key at a time; this holds {len(keys)}.")
    return keys[0]


# --- trust anchors (ProtonCA) --------------------------------------------------------------------


def trust_anchor_import(*, key_data: bytes, name: str = "ProtonCA") -> TrustAnchor:
    """Trust a CA key whose fingerprint is the pinned ``MAILGATE_PROTONCA_FINGERPRINT``: certify
    it locally with Mailgate's own key and give it full ownertrust, so that keys it certifies
    become valid. A key with another fingerprint is refused before it reaches the keyring."""
    pinned = settings.MAILGATE_PROTONCA_FINGERPRINT.replace(" ", "").upper()
    with Keyring.temporary() as scratch:
        info = _import_one(scratch, key_data)
        if info.fingerprint != pinned:
            raise ValidationError(
                f"This key's fingerprint is {info.fingerprint}, not the pinned {pinned} "
                "(MAILGATE_PROTONCA_FINGERPRINT). It was not imported: it is not ProtonCA's key."
            )
        exact = scratch.export(info.fingerprint)  # that one key, nothing else from the upload
    keyring = Keyring.default()
    with keyring.locked():
        keyring.import_keys(exact)
        _trust(keyring, info.fingerprint)
        armored = keyring.export(info.fingerprint, armor=True).decode()
    anchor, _ = TrustAnchor.objects.update_or_create(
        fingerprint=info.fingerprint,
        defaults={
            "name": name,
            "user_id": info.user_ids[0].text if info.user_ids else "",
            "public_key": armored,
            "expires_at": info.expires_at,
        },
    )
    certifications_check()
    return anchor


def trust_anchor_fetch_protonca(*, url: str | None = None) -> TrustAnchor:
    """Fetch ProtonCA's key by WKD (``openpgp-ca@proton.me``) and import it as above."""
    return trust_anchor_import(key_data=_fetch(PROTONCA_ADDRESS, url=url), name="ProtonCA")


@transaction.atomic
def trust_anchor_delete(*, anchor: TrustAnchor) -> None:
    keyring = Keyring.default()
    with keyring.locked():
        keyring.set_ownertrust(anchor.fingerprint, "TRUST_UNDEFINED")
        _delete_quietly(keyring, anchor.fingerprint)
    anchor.delete()
    certifications_check()


def _trust(keyring: Keyring, fingerprint: str) -> None:
    keyring.local_sign(fingerprint, certifier=keyring.certifier())
    keyring.set_ownertrust(fingerprint, FULL)


# --- contacts' keys ------------------------------------------------------------------------------


def contact_key_import(*, key_data: bytes, label: str = "") -> ContactKey:
    """Add a correspondent's public key to Mailgate's keyring and show how valid it is."""
    with Keyring.temporary() as scratch:
        info = _import_one(scratch, key_data)
        exact = scratch.export(info.fingerprint)
    keyring = Keyring.default()
    keyring.import_keys(exact)
    contact = ContactKey.objects.filter(fingerprint=info.fingerprint).first()
    contact = contact or ContactKey(fingerprint=info.fingerprint)
    contact.label = label or contact.label
    contact.user_ids = [uid.text for uid in info.user_ids]
    contact.public_key = keyring.export(info.fingerprint, armor=True).decode()
    contact.expires_at = info.expires_at
    contact.full_clean()
    contact.save()
    certifications_check()
    contact.refresh_from_db()
    return contact


def contact_key_fetch(*, address: str, label: str = "", url: str | None = None) -> ContactKey:
    """Fetch a correspondent's key by WKD: new, or again to get renewed certifications."""
    return contact_key_import(key_data=_fetch(address, url=url), label=label)


def contact_key_delete(*, contact: ContactKey) -> None:
    _delete_quietly(Keyring.default(), contact.fingerprint)
    contact.delete()


def _fetch(address: str, *, url: str | None) -> bytes:
    try:
        return wkd.fetch(address, url=url)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"The key of {address} could not be fetched by WKD: {exc}") from None


def _delete_quietly(keyring: Keyring, fingerprint: str) -> None:
    with contextlib.suppress(GpgError):  # not in the keyring (any more): the row goes all the same
        keyring.delete(fingerprint)


# --- certifications ------------------------------------------------------------------------------


def certifications_check_queue(*, user) -> None:
    """A check of every contact key's certifications by a worker, after commit (the owner's)."""
    if not acts_as_owner(user):
        raise PermissionDenied("Only the owner checks the contact keys.")
    after_commit("keys.tasks.certifications_check")


def certifications_check(*, now: datetime | None = None) -> list[CertificationAlert]:
    """Refresh every contact key's validity and replace the alerts: one per user ID whose
    certification by a trust anchor has expired or expires within ``ALERT_WINDOW``.

    ``now`` (for tests and what-if checks) runs gpg with ``--faked-system-time`` on the same
    path; validities are then still today's, since gpg's trust database is never recomputed
    for an imagined time."""
    moment = now or timezone.now()
    anchors = list(TrustAnchor.objects.all())
    contacts = list(ContactKey.objects.all())
    keyring = Keyring.default()
    with keyring.locked():
        _restore(keyring, anchors, contacts)
        fingerprints = [contact.fingerprint for contact in contacts]
        listed = keyring.list_keys(*fingerprints) if contacts else []
        checked = keyring.check_signatures(*fingerprints, now=now) if contacts else []
    by_fingerprint = {contact.fingerprint: contact for contact in contacts}
    alerts = [
        alert
        for key in checked
        if key.fingerprint in by_fingerprint
        for alert in _alerts(by_fingerprint[key.fingerprint], key, anchors, moment)
    ]
    _store(contacts, {key.fingerprint: key for key in listed}, alerts, moment)
    return alerts


def _restore(keyring: Keyring, anchors: list[TrustAnchor], contacts: list[ContactKey]) -> None:
    """Put into the keyring what the database holds and it lacks (a new volume, a restore)."""
    present = {key.fingerprint for key in keyring.list_keys()}
    for row in [*anchors, *contacts]:
        if row.fingerprint not in present:
            keyring.import_keys(row.public_key.encode())
    ownertrust = keyring.ownertrust() if anchors else {}
    for anchor in anchors:
        if anchor.fingerprint not in present or ownertrust.get(anchor.fingerprint) != 5:
            _trust(keyring, anchor.fingerprint)
    # Ownertrust or keys may have changed: recompute validities now, with the real clock.
    keyring.run("--check-trustdb")


def _alerts(contact, key: KeyInfo, anchors, now: datetime) -> list[CertificationAlert]:
    alerts = []
    for uid in key.user_ids:
        for anchor in anchors:
            certifications = [
                sig
                for sig in uid.signatures
                if sig.status == "!" and sig.is_certification and sig.made_by(anchor.fingerprint)
            ]
            ends = [sig.expires_at for sig in certifications]
            if not ends or None in ends:
                continue  # not certified by this anchor, or certified for good
            last = max(ends)
            if last > now + ALERT_WINDOW:
                continue
            kind = AlertKind.EXPIRED if last <= now else AlertKind.EXPIRING
            alerts.append(
                CertificationAlert(
                    contact_key=contact,
                    trust_anchor=anchor,
                    user_id=uid.text,
                    kind=kind,
                    expires_at=last,
                    checked_at=now,
                )
            )
    return alerts


@transaction.atomic
def _store(contacts, listed: dict[str, KeyInfo], alerts, moment: datetime) -> None:
    for contact in contacts:
        key = listed.get(contact.fingerprint)
        if key is not None:
            contact.validity = key.validity or contact.validity
            contact.expires_at = key.expires_at
            contact.user_ids = [uid.text for uid in key.user_ids]
        contact.checked_at = moment
    fields = ["validity", "expires_at", "user_ids", "checked_at"]
    ContactKey.objects.bulk_update(contacts, fields)
    CertificationAlert.objects.all().delete()
    CertificationAlert.objects.bulk_create(alerts)
