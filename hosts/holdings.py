"""What a host holds, read from its copies of the files Mailgate renders: the domains, mailboxes
and aliases it serves, and the settings it has. A plan that would take one of them away (a
domain, mailbox or alias no file names any more, a setting no longer given) is destructive, and
is deployed only once a person has confirmed it (``Deployment.destructive``).

A mailbox is held where Dovecot's users file, Postfix's mailbox map or Mailu's import names it,
so a mailbox that goes is one removal however many files named it; an alias whose address
becomes a mailbox has not gone. Until Mailgate's first import, Mailu's application tokens count
too (each by its hash): the import deletes every token the document lacks. Settings are those of
``mailu.env`` and ``wg0.conf`` (whole files that only say what the owner chose), and of
``main.cf`` the ones Mailgate models: every ``main.cf`` Debian installs has defaults Mailgate's
replaces, which are no one's choice, and adoption reports the others as not understood
(docs/adoption.md). A WireGuard peer is known by the tunnel address it is given (its first host
route in AllowedIPs; the hub, given networks, is a spoke's one peer), so new keys for the same
peer take nothing away.
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml

from hosts.adopt import readers
from hosts.render import dovecot, mailu, postfix, postsrsd, wireguard

# main.cf parameters Mailgate writes only for some setups: the host holds one when it gives it
# a value, and a plan that leaves it out resets it.
MODELED_MAIN_CF = (
    "relayhost",
    "smtp_sasl_password_maps",
    "sender_canonical_maps",
    "smtp_tls_fingerprint_cert_match",
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_maps",
    "smtpd_sender_login_maps",
    "smtpd_milters",
    "non_smtpd_milters",
    "tls_server_sni_maps",
)

# Values of those that are Mailgate's own plumbing, not anyone's choice: postsrsd's lookup comes
# and goes with the forwards to other domains (hosts/render/postsrsd.py), and a forward turned
# off takes nothing away that the host holds.
PLUMBING = {"sender_canonical_maps": postsrsd.main_cf_value()}


@dataclass(frozen=True, order=True)
class Held:
    kind: str  # domain, mailbox, alias or setting
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def _map(kind: str) -> Callable[[str], set[Held]]:
    return lambda text: {Held(kind, row.key) for row in readers.table(text)}


def _users(text: str) -> set[Held]:
    return {Held("mailbox", row.key) for row in readers.passwd_file(text)}


def _main_cf(text: str) -> set[Held]:
    settings = readers.main_cf(text)
    return {
        Held("setting", f"main.cf {name}")
        for name in MODELED_MAIN_CF
        if name in settings and settings[name].value not in ("", PLUMBING.get(name))
    }


def _env(text: str) -> set[Held]:
    return {
        Held("setting", f"mailu.env {key}")
        for key, entry in readers.env_file(text).items()
        if entry.value
    }


def _mailu_import(text: str) -> set[Held]:
    """Mailgate's import document, or Mailu's own export (domains in Unicode, relayed domains
    too, which a full import deletes)."""
    document = yaml.safe_load(text) or {}
    domains = [*document.get("domain", []), *(document.get("relay") or [])]
    held = {Held("domain", _ascii(row["name"])) for row in domains}
    held |= {Held("mailbox", _ascii_address(row["email"])) for row in document.get("user", [])}
    held |= {
        Held(
            "alias",
            _ascii_address(
                row["email"].replace("%@", "@", 1) if row.get("wildcard") else row["email"]
            ),
        )
        for row in document.get("alias", [])
    }
    held |= {
        Held("device password", f"{_ascii_address(row['email'])} (token {_short(token)})")
        for row in document.get("user", [])
        for token in row.get("tokens") or []
    }
    return held


def _short(token: dict) -> str:
    """A token by its hash (as Mailu keeps it, and as Mailgate renders an adopted one back)."""
    return hashlib.sha256(str(token["password"]).encode()).hexdigest()[:12]


def _is_export(path: str, content: bytes) -> bool:
    """Mailu's own export (``LIVE``), which lists relayed domains; Mailgate's document has none."""
    if path != mailu.IMPORT_PATH:
        return False
    try:
        return "relay" in (yaml.safe_load(content) or {})
    except yaml.YAMLError:
        return False


def _ascii(name: str) -> str:
    return name.encode("idna").decode()


def _ascii_address(address: str) -> str:
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{_ascii(domain)}"


# Files whose content, until Mailgate first writes them, lives in a program: what Mailu holds is
# in its database until Mailgate's first import replaces it, and its export says what that is.
LIVE = {mailu.IMPORT_PATH: mailu.export_command()}


def live(path: str, session) -> bytes:
    """What the program behind ``path`` holds now (``LIVE``), or nothing while it does not run."""
    result = session.run(LIVE[path])
    return result.stdout.encode() if result.status == 0 else b""


def _wireguard(name: str) -> Callable[[str], set[Held]]:
    def read(text: str) -> set[Held]:
        held = set()
        for section in readers.wireguard(text):
            who = _peer(section) if section.name == "Peer" else section.name
            held |= {
                Held("setting", f"{name} {who}.{entry.key}")
                for entry in section.entries
                if entry.value
            }
        return held

    return read


def _peer(section: readers.Section) -> str:
    """A hub's peer by the tunnel address it is given (its first host route); a spoke's hub,
    which is given networks, as the one peer."""
    allowed = [ip.strip() for ip in section.get("AllowedIPs").split(",")]
    routes = [ip for ip in allowed if ip.endswith(("/32", "/128"))]
    return f"Peer {routes[0]}" if routes else "Peer"


READERS: dict[str, Callable[[str], set[Held]]] = {
    f"{postfix.MAPS_DIR}/virtual_domains": _map("domain"),
    f"{postfix.MAPS_DIR}/virtual_mailboxes": _map("mailbox"),
    f"{postfix.MAPS_DIR}/virtual_aliases": _map("alias"),
    postfix.MAIN_CF: _main_cf,
    dovecot.USERS: _users,
    mailu.ENV_PATH: _env,
    mailu.IMPORT_PATH: _mailu_import,
}


def reader(path: str) -> Callable[[str], set[Held]] | None:
    """How to read what ``path`` holds, or None for a file that holds nothing of the kind."""
    if path in READERS:
        return READERS[path]
    where = PurePosixPath(path)
    if str(where.parent) == wireguard.CONFIG_DIR and where.suffix == ".conf":
        return _wireguard(where.name)
    return None


def held(path: str, content: bytes) -> set[Held]:
    """What one file holds; a file that cannot be read holds something unknown."""
    read = reader(path)
    if read is None or not content:
        return set()
    try:
        return read(content.decode())
    except (UnicodeDecodeError, ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {Held("setting", f"{path} (unreadable: what it holds is unknown)")}


def removals(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> list[str]:
    """What the host holds in the files of ``before`` (its copies of the files the plan changes
    or removes) that none of ``after`` (every file it will have from the bundle) holds."""
    old = _all(before.items())
    if not old:
        return []
    new = _all((path, content) for path, content in after.items() if reader(path))
    mailboxes = {item.name for item in new if item.kind == "mailbox"}
    # A device password revoked in Mailgate goes without asking; one Mailu made does not.
    tokens = _all((path, content) for path, content in before.items() if _is_export(path, content))
    gone = sorted(old - new)
    return [
        str(item)
        for item in gone
        if not (item.kind == "alias" and item.name in mailboxes)
        and (item.kind != "device password" or item in tokens)
    ]


def _all(files: Iterable[tuple[str, bytes]]) -> set[Held]:
    return set().union(*(held(path, content) for path, content in files))
