"""Readers for the line formats a mail host keeps its configuration in, the inverse of
``gateway.writers``: Postfix's ``main.cf`` and lookup-table sources, env files, Dovecot's
passwd-file and ``wg-quick``'s configuration. Each entry keeps its line number, so that whatever
Mailgate cannot take over is reported where it stands; the destructive-change guard
(``hosts.holdings``) reads the host's files with the same readers.

Formats as their programs read them (docs/adoption.md): postconf(5) and postmap(1) join a line
that starts with whitespace to the one before and skip blank lines and lines whose first
non-blank character is ``#``; a table's key ends at the first whitespace; passwd-file(5) fields
are separated by ``:``; wg-quick(8) takes ``Key = value`` lines in ``[Interface]`` and
``[Peer]`` sections, ``#`` starting a comment.
"""

import re
from dataclasses import dataclass, field

_SCHEME = re.compile(r"^\{[A-Za-z0-9._-]+\}")
# crypt(3) prefixes and the names Dovecot gives them (doveadm-pw(1)).
_CRYPT_SCHEMES = {
    "$2a$": "BLF-CRYPT",
    "$2b$": "BLF-CRYPT",
    "$2y$": "BLF-CRYPT",
    "$6$": "SHA512-CRYPT",
    "$5$": "SHA256-CRYPT",
    "$1$": "MD5-CRYPT",
}


# The password schemes Dovecot 2.3 verifies (doveadm-pw(1), "Password schemes" in its manual).
DOVECOT_SCHEMES = {
    "ARGON2I", "ARGON2ID", "BLF-CRYPT", "CLEAR", "CRAM-MD5", "CRYPT", "DIGEST-MD5", "LANMAN",
    "LDAP-MD5", "MD5", "MD5-CRYPT", "NTLM", "OTP", "PBKDF2", "PLAIN", "PLAIN-MD5", "PLAIN-TRUNC",
    "SCRAM-SHA-1", "SCRAM-SHA-256", "SHA", "SHA1", "SHA256", "SHA256-CRYPT", "SHA512",
    "SHA512-CRYPT", "SKEY", "SMD5", "SSHA", "SSHA256", "SSHA512",
}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One logical line: its first line number, its key and the rest."""

    line: int
    key: str
    value: str


@dataclass
class Section:
    """A ``[Name]`` section of a wg-quick file, from its header line."""

    name: str
    line: int
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> str:
        return next((e.value for e in self.entries if e.key.lower() == key.lower()), "")


class Unreadable(ValueError):
    """A line the format does not allow; ``line`` is its number."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of every line that is not blank or a comment, with the lines
    that start with whitespace joined to it, as postconf(5) and postmap(1) read them."""
    joined: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0].isspace() and joined:
            first, before = joined[-1]
            joined[-1] = (first, f"{before} {stripped}")
        else:
            joined.append((number, stripped))
    return joined


def main_cf(text: str) -> dict[str, Entry]:
    """``name = value`` parameters; a later one wins, as in Postfix."""
    settings = {}
    for number, line in logical_lines(text):
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise Unreadable(number, f"not 'name = value': {line!r}")
        settings[name.strip()] = Entry(number, name.strip(), value.strip())
    return settings


def table(text: str) -> list[Entry]:
    """A lookup table's source (``postmap``'s input): a key, whitespace, its value."""
    rows = []
    for number, line in logical_lines(text):
        key, *value = line.split(None, 1)
        rows.append(Entry(number, key, value[0] if value else ""))
    return rows


def env_file(text: str) -> dict[str, Entry]:
    """``KEY=VALUE`` lines (Mailu's ``mailu.env``, read by docker compose)."""
    settings = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise Unreadable(number, f"not 'KEY=value': {line!r}")
        settings[key.strip()] = Entry(number, key.strip(), value.strip())
    return settings


def passwd_file(text: str) -> list[Entry]:
    """Dovecot's passwd-file: ``user:password:uid:gid:gecos:home:shell:extra`` per line; the
    entry's value is everything after the user."""
    users = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, rest = line.partition(":")
        if not colon:
            raise Unreadable(number, f"not 'user:password:...': {line!r}")
        users.append(Entry(number, user, rest))
    return users


def wireguard(text: str) -> list[Section]:
    """wg-quick's sections, each with its ``Key = value`` lines (comments dropped)."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append(Section(line[1:-1].strip(), number))
            continue
        key, equals, value = line.partition("=")
        if not equals or not sections:
            raise Unreadable(number, f"not 'Key = value' inside a section: {line!r}")
        sections[-1].entries.append(Entry(number, key.strip(), value.strip()))
    return sections


def scheme_prefixed(password: str, default: str = "") -> str:
    """A password hash as Dovecot and Mailgate keep it, ``{SCHEME}hash``: a crypt(3) hash named
    by its prefix, else ``default`` (a passdb's ``scheme=``); one it cannot name stays as it is
    (Mailu's passlib formats, which only Mailu reads)."""
    if _SCHEME.match(password):
        return password
    scheme = next(
        (s for prefix, s in _CRYPT_SCHEMES.items() if password.startswith(prefix)), default
    )
    return f"{{{scheme}}}{password}" if scheme else password


def dovecot_verifies(digest: str) -> bool:
    """Whether Dovecot can check a password against ``digest`` as Mailgate keeps it: a
    ``{SCHEME}`` it knows. A bare passlib hash (Mailu's ``$bcrypt-sha256$`` for a password,
    ``$pbkdf2-sha256$`` for a token) names no scheme Dovecot has."""
    scheme = _SCHEME.match(digest)
    return bool(scheme) and scheme.group()[1:-1].upper() in DOVECOT_SCHEMES


_QUOTA = re.compile(r"^\*:(storage|bytes)=(\d+)([kKMGT]?)[bB]?$")
_UNITS = {"": 1, "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def quota_bytes(rule: str) -> int | None:
    """A Dovecot ``quota_rule`` (``*:storage=1G``, ``*:bytes=1073741824``) in bytes, 0 for
    none; None for a rule that is not a plain limit. A ``storage`` without a unit is in MB, as
    Mailgate renders it (hosts/render/dovecot.py), a ``bytes`` in bytes."""
    match = _QUOTA.match(rule.strip())
    if match is None:
        return None
    kind, size, unit = match.groups()
    if not unit:
        return int(size) * (1024**2 if kind == "storage" else 1)
    return int(size) * _UNITS[unit]
