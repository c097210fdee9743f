"""What gpg prints with ``--with-colons``: keys, user IDs and signatures as GnuPG's doc/DETAILS
describes the records (``--fixed-list-mode``: dates in seconds since the epoch)."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_MAILBOX = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True)
class Signature:
    """One signature record of ``--check-sigs``: ``status`` is ``!`` for a good signature."""

    status: str
    keyid: str
    created_at: datetime | None
    expires_at: datetime | None
    sig_class: str  # e.g. "13x" (exportable positive certification), "10l" (local)
    issuer_fingerprint: str

    @property
    def is_certification(self) -> bool:
        return self.sig_class[:2] in {"10", "11", "12", "13"}

    def made_by(self, fingerprint: str) -> bool:
        fingerprint = fingerprint.upper()
        if self.issuer_fingerprint:
            return self.issuer_fingerprint.upper() == fingerprint
        return fingerprint.endswith(self.keyid.upper())


@dataclass
class UserId:
    text: str
    validity: str
    signatures: list[Signature] = field(default_factory=list)

    @property
    def mailbox(self) -> str:
        return mailbox_of(self.text)


@dataclass
class Subkey:
    fingerprint: str
    validity: str
    capabilities: str
    expires_at: datetime | None


@dataclass
class KeyInfo:
    """A key as gpg lists it; ``validity`` is gpg's letter (``f`` full, ``u`` ultimate, ...)."""

    fingerprint: str
    validity: str
    capabilities: str
    created_at: datetime | None
    expires_at: datetime | None
    user_ids: list[UserId] = field(default_factory=list)
    subkeys: list[Subkey] = field(default_factory=list)

    @property
    def revoked(self) -> bool:
        return self.validity == "r"

    @property
    def can_encrypt(self) -> bool:
        # Lowercase letters are a key's own usages; uppercase ones sum up the usable whole.
        return "e" in self.capabilities or any("e" in sub.capabilities for sub in self.subkeys)

    @property
    def usable_until(self) -> datetime | None:
        """When the key stops being usable for encryption: its own expiry, or that of its last
        unrevoked encryption subkey if earlier (None: never)."""
        ends = [self.expires_at]
        if "e" not in self.capabilities:
            encrypting = [
                sub.expires_at
                for sub in self.subkeys
                if "e" in sub.capabilities and sub.validity != "r"
            ]
            if encrypting:
                ends.append(None if None in encrypting else max(encrypting))
        known = [end for end in ends if end is not None]
        return min(known) if known else None

    def user_ids_for(self, address: str) -> list[UserId]:
        return [uid for uid in self.user_ids if uid.mailbox == ascii_lower(address)]


def ascii_lower(value: str) -> str:
    """Lowercase ASCII letters only, as GnuPG does (``Ü`` stays ``Ü``)."""
    return value.encode("utf-8").lower().decode("utf-8")


def mailbox_of(user_id: str) -> str:
    """The mail address in a user ID, lowercased as gpg's ``mbox`` filter property is."""
    match = _MAILBOX.findall(user_id)
    candidate = match[-1] if match else user_id.strip()
    if "@" not in candidate or any(char.isspace() for char in candidate):
        return ""
    return ascii_lower(candidate)


def parse_listing(text: str) -> list[KeyInfo]:
    """Keys from ``gpg --with-colons --fixed-list-mode`` output (``--list-keys``,
    ``--check-sigs``, ``--show-keys``); fields are numbered as in GnuPG's doc/DETAILS."""
    keys: list[KeyInfo] = []
    target = None  # what the next fpr record belongs to
    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind in {"pub", "sec"}:
            target = KeyInfo("", fields[1], _field(fields, 12), *_dates(fields))
            keys.append(target)
        elif kind in {"sub", "ssb"} and keys:
            target = Subkey("", fields[1], _field(fields, 12), _dates(fields)[1])
            keys[-1].subkeys.append(target)
        elif kind == "fpr" and target is not None and not target.fingerprint:
            target.fingerprint = _field(fields, 10)
        elif kind == "uid" and keys:
            keys[-1].user_ids.append(UserId(unescape(_field(fields, 10)), fields[1]))
            target = None
        elif kind in {"sig", "rev"} and keys and keys[-1].user_ids and target is None:
            keys[-1].user_ids[-1].signatures.append(_signature(fields))
    return keys


def _signature(fields: list[str]) -> Signature:
    created, expires = _dates(fields)
    return Signature(
        fields[1], _field(fields, 5), created, expires, _field(fields, 11), _field(fields, 13)
    )


def _field(fields: list[str], number: int) -> str:
    """Field ``number``, counted from 1 as doc/DETAILS does."""
    return fields[number - 1] if len(fields) >= number else ""


def _dates(fields: list[str]) -> tuple[datetime | None, datetime | None]:
    return _timestamp(_field(fields, 6)), _timestamp(_field(fields, 7))


def _timestamp(value: str) -> datetime | None:
    # --fixed-list-mode prints seconds since the epoch; an ISO form appears only without it.
    if not value:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), tz=UTC)
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def unescape(value: str) -> str:
    """Colon listings escape ``:`` and control characters as ``\\xNN`` bytes in UTF-8 text."""
    if "\\x" not in value:
        return value
    raw = _ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), value.encode())
    return raw.decode("utf-8", "replace")
