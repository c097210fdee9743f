"""Mailu's side of adoption: the document ``flask mailu config-export --full --secrets`` prints
(YAML, or JSON with ``-j``) and ``mailu.env``.

What Mailgate models is taken over: domains, users (address, password hash, display name, quota,
enabled, forwarding, auto-reply, spam and IMAP/POP3 settings), their tokens as device passwords
(Mailu's hash as it is, its comment as the name), aliases with their destinations (the catch-all
``%@domain`` too) and, for users who have a panel account, manager rights. What Mailgate does not
model and Mailu keeps through Mailgate's import (its script merges the columns in; alternative
names, fetched accounts and manager rights live in tables of their own; a token's networks stay
with its hash; a forward that is off keeps its addresses) is reported with its line, as is what
the import would change: a disabled user, a relayed domain (docs/adoption.md). Mailu's defaults
are its model's column defaults (``core/admin/mailu/models.py``, 2024.06).
"""

import datetime

import yaml

from hosts.adopt import readers
from hosts.adopt.found import Found, FoundAlias, FoundDevice, FoundRelay
from hosts.adopt.report import Report, Where

# What a user holds that Mailgate does not model, with Mailu's defaults. Mailgate's import script
# merges these columns in from what Mailu holds (hosts/render/scripts/mailu-import.py).
USER_DEFAULTS = {
    "comment": "",
    "global_admin": False,
    "change_pw_next_login": False,
    "allow_spoofing": False,
    "spam_mark_as_read": True,
}
# Lists of their own that a full import leaves in place (manager_of Mailgate takes over).
USER_KEPT = {"fetches": []}
DOMAIN_DEFAULTS = {
    "comment": "",
    "max_users": -1,
    "max_aliases": -1,
    "max_quota_bytes": 0,
    "signup_enabled": False,
}
DOMAIN_KEPT = {"alternatives": []}
KEPT = "Mailu keeps it through Mailgate's import"
# Mailu's "no first day" and "no last day" of an auto-reply (hosts/render/mailu.py).
NO_START, NO_END = datetime.date(1900, 1, 1), datetime.date(2999, 12, 31)


class _LineLoader(yaml.SafeLoader):
    """Every mapping remembers the line it starts on (``__line__``)."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def read_export(text: str, path: str, found: Found, report: Report) -> None:
    """Take over what Mailu's export holds; a document that is not an export is refused with
    the line it fails at."""
    try:
        document = yaml.load(text, Loader=_LineLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        report.error(Where(path, mark.line + 1 if mark else 0), f"not YAML or JSON: {exc}")
        return
    if not isinstance(document, dict):
        report.error(Where(path, 1), "not a Mailu export (a mapping of domain, user, alias)")
        return
    for section, read in (("domain", _domain), ("user", _user), ("alias", _alias)):
        for row in document.get(section) or []:
            where = Where(path, row.get("__line__", 0) if isinstance(row, dict) else 0)
            try:
                read(row, where, found, report)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                report.error(where, f"a {section} Mailgate cannot read ({exc!r})")
    for row in document.get("relay") or []:
        where = Where(path, row.get("__line__", 0))
        report.unknown(
            where,
            f"relayed domain {row.get('name')}: Mailgate does not model relayed domains, and "
            "its import deletes it (the plan marks that destructive)",
        )


def _others(row: dict, defaults: dict, kept: dict, where: Where, what: str, report) -> None:
    for key, default in {**defaults, **kept}.items():
        if key in row and row[key] != default:
            report.unknown(where, f"{what}: {key} = {_shown(key, row[key])} ({KEPT})")


def _shown(key: str, value) -> str:
    """A value as the report shows it: fetched accounts without their passwords."""
    if key == "fetches":
        return ", ".join(
            f"{f['protocol']}://{f['username']}@{f['host']}:{f['port']}" for f in value
        )
    return repr(value)


def _domain(row: dict, where: Where, found: Found, report: Report) -> None:
    name = row["name"]
    found.domains[name] = where
    report.adopt(where, f"domain {name}")
    _others(row, DOMAIN_DEFAULTS, DOMAIN_KEPT, where, f"domain {name}", report)
    if row.get("dkim_key"):
        report.unknown(where, f"domain {name}: its DKIM key (Mailgate signs with its own)")


def _user(row: dict, where: Where, found: Found, report: Report) -> None:
    email = row["email"]
    if not row.get("password"):
        report.error(where, f"user {email} has no password hash: export with --secrets")
        return
    mailbox = found.mailbox(email, where)
    mailbox.password_hash = readers.scheme_prefixed(row["password"])
    mailbox.display_name = row.get("displayed_name") or ""
    mailbox.quota_bytes = int(row.get("quota_bytes", 0))
    mailbox.enabled = bool(row.get("enabled", True))
    mailbox.settings = _settings(row, where, report)
    mailbox.devices = _tokens(row, where, report)
    report.adopt(where, f"mailbox {email}")
    if not mailbox.enabled:
        report.unknown(
            where,
            f"user {email} is disabled: Mailgate renders no disabled mailbox, "
            "so its import deletes the user from Mailu (enable it to keep it)",
        )
    for domain in row.get("manager_of") or []:
        found.managers.append((domain, email, where))
    _others(row, USER_DEFAULTS, USER_KEPT, where, f"user {email}", report)


def _settings(row: dict, where: Where, report: Report) -> dict:
    """A user's forwarding, auto-reply, spam and protocol settings as Mailbox fields."""
    destinations = list(row.get("forward_destination") or [])
    forwarding = bool(row.get("forward_enabled")) and destinations
    if destinations and not forwarding:
        report.unknown(
            where,
            f"user {row['email']}: forward_destination = {destinations} while forwarding is "
            f"off ({KEPT})",
        )
    return {
        "forward_to": destinations if forwarding else [],
        "forward_keep_copy": bool(row.get("forward_keep", True)),
        "autoreply_enabled": bool(row.get("reply_enabled", False)),
        "autoreply_subject": row.get("reply_subject") or "",
        "autoreply_body": row.get("reply_body") or "",
        "autoreply_start": _day(row.get("reply_startdate"), NO_START),
        "autoreply_end": _day(row.get("reply_enddate"), NO_END),
        "spam_enabled": bool(row.get("spam_enabled", True)),
        "spam_threshold": int(row.get("spam_threshold", 80)),
        "imap_enabled": bool(row.get("enable_imap", True)),
        "pop3_enabled": bool(row.get("enable_pop", True)),
    }


def _day(value, unlimited: datetime.date) -> datetime.date | None:
    """A day of the export (YAML reads ISO dates as dates, JSON gives text); Mailu's
    "unlimited" day is Mailgate's empty one."""
    if value is None or value == "":
        return None
    day = value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))
    return None if day == unlimited else day


def _tokens(row: dict, where: Where, report: Report) -> list[FoundDevice]:
    """Mailu's application tokens: a device password each, its hash as Mailu keeps it and its
    comment as the name (a token without one, or with a name taken, is named here)."""
    devices, taken = [], set()
    for number, token in enumerate(row.get("tokens") or [], start=1):
        name = (token.get("comment") or "").strip() or f"Mailu token {number}"
        if name in taken:
            name = f"{name} ({number})"
        if name != (token.get("comment") or ""):
            report.unknown(
                where,
                f"user {row['email']}: token {number} is named {name!r} in Mailgate (Mailu "
                "keeps its own comment on it)",
            )
        taken.add(name)
        devices.append(FoundDevice(name, readers.scheme_prefixed(token["password"]), where))
        report.adopt(where, f"device password {name!r} of {row['email']}")
        if token.get("ip"):
            report.unknown(
                where,
                f"user {row['email']}: token {name!r} only from {', '.join(token['ip'])} ({KEPT})",
            )
    return devices


def _alias(row: dict, where: Where, found: Found, report: Report) -> None:
    email, destinations = row["email"], list(row["destination"])
    local, _, domain = email.rpartition("@")
    if row.get("wildcard"):
        if local != "%":
            report.error(
                where,
                f"wildcard alias {email}: Mailgate's only pattern is the catch-all %@{domain}",
            )
            return
        email = f"@{domain}"
    found.aliases[email] = FoundAlias(email, destinations, where)
    report.adopt(where, f"alias {email}")
    if row.get("comment"):
        report.unknown(where, f"alias {email}: comment = {row['comment']!r} ({KEPT})")


# --- mailu.env ----------------------------------------------------------------------------------


def read_env(text: str, path: str, found: Found, report: Report) -> None:
    """The settings Mailgate models: Mailu's secret key, its subnet, its host names and relay."""
    try:
        settings = readers.env_file(text)
    except readers.Unreadable as exc:
        report.error(Where(path, exc.line), str(exc))
        return

    def at(key: str) -> Where:
        return Where(path, settings[key].line)

    if "SECRET_KEY" in settings:
        found.host["mailu_secret_key"] = (settings["SECRET_KEY"].value, at("SECRET_KEY"))
    if "SUBNET" in settings:
        found.routed_subnet = (settings["SUBNET"].value, at("SUBNET"))
    if "HOSTNAMES" in settings:
        first = settings["HOSTNAMES"].value.split(",")[0].strip()
        found.host["fqdn"] = (first, at("HOSTNAMES"))
    if settings.get("RELAYHOST") and settings["RELAYHOST"].value:
        found.relay = _relay(settings, at("RELAYHOST"))


def _relay(settings: dict, where: Where) -> FoundRelay:
    host, _, port = settings["RELAYHOST"].value.strip("[").partition("]:")
    relay = FoundRelay(host.rstrip("]"), int(port or 25), where)
    relay.username = settings["RELAYUSER"].value if "RELAYUSER" in settings else ""
    relay.password = settings["RELAYPASSWORD"].value if "RELAYPASSWORD" in settings else ""
    level = settings.get("OUTBOUND_TLS_LEVEL")
    relay.tls_level = {"secure": "secure", "encrypt": "encrypt"}.get(
        level.value if level else "", ""
    )
    return relay
