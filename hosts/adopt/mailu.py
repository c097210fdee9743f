"""Mailu's side of adoption: the document ``flask mailu config-export --full --secrets`` prints
(YAML, or JSON with ``-j``) and ``mailu.env``.

What Mailgate models is taken over: domains, users (address, password hash, display name, quota,
enabled), aliases with their destinations (the catch-all ``%@domain`` too) and, for users who
have a panel account, manager rights. Everything else that differs from Mailu's default is
reported as not understood, saying what Mailgate's deployment does to it: a full import resets a
domain's or user's own columns to Mailu's defaults, and keeps what hangs off them in tables of
their own (alternative names, tokens, fetched accounts, manager rights; docs/facts.md §3).
Mailu's defaults are its model's column defaults (``core/admin/mailu/models.py``, 2024.06).
"""

import yaml

from hosts.adopt import readers
from hosts.adopt.found import Found, FoundAlias, FoundRelay
from hosts.adopt.report import Report, Where

USER_DEFAULTS = {
    "comment": "",
    "global_admin": False,
    "change_pw_next_login": False,
    "allow_spoofing": False,
    "enable_imap": True,
    "enable_pop": True,
    "forward_enabled": False,
    "forward_destination": [],
    "forward_keep": True,
    "reply_enabled": False,
    "reply_subject": None,
    "reply_body": None,
    "reply_startdate": "1900-01-01",
    "reply_enddate": "2999-12-31",
    "spam_enabled": True,
    "spam_mark_as_read": True,
    "spam_threshold": 80,
}
# Lists of their own that a full import leaves in place (manager_of Mailgate takes over).
USER_KEPT = {"tokens": [], "fetches": []}
DOMAIN_DEFAULTS = {
    "comment": "",
    "max_users": -1,
    "max_aliases": -1,
    "max_quota_bytes": 0,
    "signup_enabled": False,
}
DOMAIN_KEPT = {"alternatives": []}
RESET = "Mailgate's import resets it to Mailu's default"
KEPT = "Mailu keeps it through Mailgate's import"


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
        report.unknown(where, f"relayed domain {row.get('name')}: Mailgate's import deletes it")


def _others(row: dict, defaults: dict, kept: dict, where: Where, what: str, report) -> None:
    for key, default in {**defaults, **kept}.items():
        if key in row and row[key] != default:
            fate = KEPT if key in kept else RESET
            report.unknown(where, f"{what}: {key} = {row[key]!r} ({fate})")


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
    report.adopt(where, f"mailbox {email}")
    for domain in row.get("manager_of") or []:
        found.managers.append((domain, email, where))
    _others(row, USER_DEFAULTS, USER_KEPT, where, f"user {email}", report)


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
        report.unknown(where, f"alias {email}: comment = {row['comment']!r} ({RESET})")


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
