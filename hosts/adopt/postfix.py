"""Postfix + Dovecot's side of adoption, from ``main.cf`` on: the virtual domain, mailbox, alias
and sender login tables it names, Dovecot's passwd-file users with their hashes, and a relay's
``relayhost``, SASL password table and canonical sender rewrite.

A table named ``hash:`` or ``lmdb:`` (``btree:``, ``cdb:``) is read as Postfix reads it, from its
database, with ``postmap -s`` (postmap(1)); ``texthash:`` and an inline ``{ ... }`` list are read as
text; a ``mysql:`` table (the submission guide's: the ISPmail guide, docs/reference-setups.md) row
by row with the database client and the table's own credentials (``hosts.adopt.sql``), as are
Dovecot's SQL users. A table that cannot be read (LDAP, PostgreSQL, a database out of reach) is
refused, so that nothing is adopted without it. A table line Mailgate cannot express (a pipe, a file
or an ``:include:`` as a destination, a key without a domain) is refused with its line: the mail it
routes would be lost.

Sieve scripts (a user's own, or Dovecot's ``sieve_before``/``sieve_after``) cannot be adopted in
general: each one found is reported with what it does (a vacation, a redirect), never dropped.
"""

import re

from hosts.adopt import readers, sql
from hosts.adopt.found import Found, FoundAlias, FoundRelay
from hosts.adopt.report import Report, Where
from hosts.render.postfix import LOCAL_RECIPIENTS

MAIN_CF = "/etc/postfix/main.cf"
DOVECOT_CONFIGS = ("/etc/dovecot/dovecot.conf", "/etc/dovecot/conf.d")
DB_TYPES = ("hash", "lmdb", "btree", "cdb", "dbm")
_PASSWD_FILE = re.compile(r"driver\s*=\s*passwd-file\s+args\s*=\s*([^\n}]*)")
_SQL_USERS = re.compile(r"driver\s*=\s*sql\s+args\s*=\s*([^\n}]*)")
# What a Postfix + Dovecot host's main.cf says that Mailgate takes over (the rest is compared
# with what Mailgate renders, ``services``).
ROLES = {
    "virtual_mailbox_domains": "domains",
    "virtual_mailbox_maps": "mailboxes",
    "virtual_alias_maps": "aliases",
    "smtpd_sender_login_maps": "senders",
}


def tables(
    tree, spec: str, where: Where, report: Report, into: Found | None = None
) -> list[tuple[str, list[readers.Entry]]]:
    """Each table of a ``main.cf`` value (``hash:/etc/postfix/virtual, lmdb:/x``): its name
    and rows (line numbers from the text source when read as text)."""
    found = []
    for name in re.split(r"[\s,]+(?![^{]*})", spec.strip()):
        if not name:
            continue
        # proxy: hands the lookup to proxymap(8), which opens the same table
        table = name.removeprefix("proxy:")
        kind, colon, path = table.partition(":")
        if not colon:  # a bare domain in virtual_mailbox_domains
            found.append((name, [readers.Entry(where.line, name, "OK")]))
        elif kind in DB_TYPES:
            found.append((table, _database(tree, table, path, where, report)))
        elif kind == "texthash":
            found.append((name, readers.table((tree.read(path) or b"").decode())))
        elif kind == "inline":  # inline:{ key=value, ... } (postconf(5))
            pairs = [p.strip().partition("=") for p in path.strip("{} ").split(",") if p.strip()]
            found.append((name, [readers.Entry(where.line, k, v or "OK") for k, _, v in pairs]))
        elif kind == "mysql":
            found.append((name, _sql_table(tree, name, path, where, report, into)))
        else:
            report.error(where, f"{name}: Mailgate cannot read {kind} tables yet")
    return found


def _sql_table(tree, name: str, path: str, where: Where, report: Report, found: Found | None):
    """A ``mysql:`` table's rows, each key once (its rows joined), all at its query's line."""
    text = tree.read(path)
    if text is None:
        report.error(where, f"{name}: {path} is missing")
        return []
    try:
        connection, lookup = sql.postfix_table(text.decode(), path)
        entries = sql.rows(tree, connection, lookup)
    except sql.Unreadable as exc:
        report.error(exc.where, f"{name}: {exc}")
        return []
    except (OSError, ValueError) as exc:
        report.error(where, f"{name}: {exc}")
        return []
    if found is not None:
        found.sql_tables[name] = (connection, lookup)
    return entries


def _database(tree, name: str, path: str, where: Where, report: Report) -> list[readers.Entry]:
    """A table as Postfix sees it (``postmap -s``), line numbers from its text source where that
    says the same; without its database, the text source."""
    source = readers.table((tree.read(path) or b"").decode())
    try:
        dumped = readers.table(tree.postmap("-s", table=name))
    except OSError as exc:
        report.unknown(where, f"{name} has no database ({exc}): read from its text source")
        return source
    lines = {row.key: row for row in source}
    return [_same_line(row, lines.get(row.key)) for row in dumped]


def _same_line(row: readers.Entry, source: readers.Entry | None) -> readers.Entry:
    return source if source is not None and source.value == row.value else row


def read(tree, found: Found, report: Report) -> None:
    text = tree.read(MAIN_CF)
    if text is None:
        return
    try:
        settings = readers.main_cf(text.decode())
    except readers.Unreadable as exc:
        report.error(Where(MAIN_CF, exc.line), str(exc))
        return
    if "myhostname" in settings and "$" not in settings["myhostname"].value:
        found.host["fqdn"] = (
            settings["myhostname"].value,
            Where(MAIN_CF, settings["myhostname"].line),
        )
    read_directory(tree, settings, found, report)
    _sieve(tree, found, report)
    if settings.get("relayhost") and settings["relayhost"].value:
        _relay(tree, settings, found, report)


def read_directory(tree, settings: dict, found: Found, report: Report) -> None:
    rows = {role: [] for role in ROLES.values()}
    for parameter, role in ROLES.items():
        if parameter in settings and settings[parameter].value:
            where = Where(MAIN_CF, settings[parameter].line)
            for name, entries in tables(tree, settings[parameter].value, where, report, found):
                path = name.removeprefix("proxy:").partition(":")[2] or MAIN_CF
                rows[role] += [(Where(path, row.line), row) for row in entries]
                rows_of = {row.key: row.value for row in entries}
                found.tables.setdefault(role, []).append((name, rows_of))
    for where, row in rows["domains"]:
        found.domains[row.key] = where
        report.adopt(where, f"domain {row.key}")
    for where, row in rows["mailboxes"]:
        _mailbox(where, row, found, report)
    for where, row in rows["aliases"]:
        _alias(where, row, found, report)
    _users(tree, found, report)
    _sql_users(tree, found, report)
    for where, row in rows["senders"]:
        _sender(where, row, found, report)


def _mailbox(where: Where, row, found: Found, report: Report) -> None:
    if "@" not in row.key:
        report.error(where, f"mailbox {row.key!r}: Mailgate's mailboxes are addresses")
        return
    found.mailbox(row.key, where)
    report.adopt(where, f"mailbox {row.key}")
    local, _, domain = row.key.partition("@")
    if row.value not in ("OK", "1", f"{domain}/{local}/", f"{domain}/{local}/Maildir/"):
        report.unknown(where, f"mailbox {row.key}: its mail folder {row.value} (Mailgate's "
                       "Dovecot keeps mail in /var/vmail/<domain>/<user>)")  # fmt: skip


def _alias(where: Where, row, found: Found, report: Report) -> None:
    key, targets = row.key, [t for t in re.split(r"[\s,]+", row.value) if t]
    if "@" not in key or key.startswith("/"):
        report.error(where, f"{key} {row.value}: Mailgate's aliases are addresses or @domain")
        return
    refused = [t for t in targets if t.startswith(("|", "/", ":include:")) or "@" not in t]
    if refused or not targets:
        report.error(where, f"{key} -> {row.value}: Mailgate forwards only to addresses")
        return
    if targets == [key]:
        return  # a mailbox that a catch-all must not swallow: Mailgate writes that row itself
    local, _, domain = key.rpartition("@")
    if local in LOCAL_RECIPIENTS and domain in ("localhost", found.host.get("fqdn", ("",))[0]):
        # The host's own mail (bounces, cron's to root): Mailgate writes these rows itself, to
        # the postmaster; the routing comparison shows where its target differs.
        report.unknown(where, f"alias {key} -> {row.value}: the host's own mail, which "
                       "Mailgate sends to the postmaster itself")  # fmt: skip
        return
    found.aliases[key] = FoundAlias(key, targets, where)
    report.adopt(where, f"alias {key}")


def _sender(where: Where, row, found: Found, report: Report) -> None:
    logins = [t for t in re.split(r"[\s,]+", row.value) if t]
    if logins == [row.key] and row.key in found.mailboxes:
        return
    alias = found.aliases.get(row.key)
    if alias and set(logins) <= set(alias.destinations):
        alias.allowed_as_sender = True
        report.adopt(where, f"alias {row.key} allowed as sender")
    else:
        report.unknown(where, f"sender login {row.key} -> {row.value} (Mailgate lets a mailbox "
                       "send as itself and as the aliases marked for it)")  # fmt: skip


def _users(tree, found: Found, report: Report) -> None:
    """Dovecot's passwd-file users: each mailbox's hash and quota."""
    for path, scheme in _passwd_files(tree):
        try:
            users = readers.passwd_file((tree.read(path) or b"").decode())
        except readers.Unreadable as exc:
            report.error(Where(path, exc.line), str(exc))
            continue
        for user in users:
            where = Where(path, user.line)
            password, *rest = user.value.split(":", 6)  # the extra fields may hold ':'

            mailbox = found.mailbox(user.key, where)
            mailbox.password_hash = readers.scheme_prefixed(password, scheme)
            extra = rest[5] if len(rest) > 5 else ""
            if quota := re.search(r"quota_rule=(\S+)", extra):
                mailbox.quota_bytes = readers.quota_bytes(quota.group(1)) or 0
            report.adopt(where, f"password of {user.key}")


def _dovecot_texts(tree) -> list[tuple[str, str]]:
    """(path, text) of Dovecot's configuration files."""
    texts = []
    for place in DOVECOT_CONFIGS:
        names = tree.names(place)
        paths = [f"{place}/{n}" for n in names if n.endswith((".conf", ".conf.ext"))] or [place]
        texts += [(path, (tree.read(path) or b"").decode(errors="replace")) for path in paths]
    return texts


def _passwd_files(tree) -> list[tuple[str, str]]:
    """(path, default scheme) of each passwd-file passdb in Dovecot's configuration."""
    found = {}
    for _, text in _dovecot_texts(tree):
        for args in _PASSWD_FILE.findall(text):
            words = args.split()
            scheme = next((w.split("=", 1)[1] for w in words if w.startswith("scheme=")), "")
            found.setdefault(words[-1], scheme)
    return list(found.items())


def _sql_users(tree, found: Found, report: Report) -> None:
    """Dovecot's SQL users (``driver = sql``): each user's hash (``default_pass_scheme`` for
    a bare one) and quota rule, every row of its ``password_query`` and ``user_query``."""
    paths = {
        args.split()[-1] for _, text in _dovecot_texts(tree) for args in _SQL_USERS.findall(text)
    }
    for path in sorted(paths):
        text = tree.read(path)
        if text is None:
            report.error(Where(path), "Dovecot's SQL configuration is missing")
            continue
        try:
            config = sql.dovecot_users(text.decode(), path)
            held = sql.users(tree, config) if config else {}
        except sql.Unreadable as exc:
            report.error(exc.where, str(exc))
            continue
        except (OSError, ValueError) as exc:
            report.error(_connect_line(path, text), f"Dovecot's SQL users: {exc}")
            continue
        for user, fields in held.items():
            _sql_user(user, fields, config, Where(path, config.password_query.where.line), found)
            report.adopt(Where(path, config.password_query.where.line), f"password of {user}")


def _connect_line(path: str, text: bytes) -> Where:
    """The ``connect`` line of a Dovecot SQL file, where its database is named."""
    for number, line in enumerate(text.decode(errors="replace").splitlines(), start=1):
        if line.strip().startswith("connect"):
            return Where(path, number)
    return Where(path)


def _sql_user(user: str, fields: dict, config, where: Where, found: Found) -> None:
    mailbox = found.mailbox(user, where)
    if fields.get("password") not in (None, "", "NULL"):
        mailbox.password_hash = readers.scheme_prefixed(fields["password"], config.scheme)
    rule = fields.get("userdb_quota_rule") or fields.get("quota_rule") or ""
    if (size := readers.quota_bytes(rule)) is not None:
        mailbox.quota_bytes = size


# --- sieve: what a host's own scripts do, reported (never adopted, never dropped) ---------------

SIEVE_SETTINGS = re.compile(
    r"^\s*(sieve_before|sieve_after|sieve_default|sieve_global)\w*\s*=\s*(\S+)"
)
SIEVE_ACTIONS = {"vacation": "an auto-reply (vacation)", "redirect": "a forward (redirect)"}
MAIL_HOME = "/var/vmail"  # Mailgate's mail_home is /var/vmail/%d/%n (hosts/render/dovecot.py)


def _sieve(tree, found: Found, report: Report) -> None:
    """Sieve settings and scripts of the host's own: Mailgate cannot turn a script into its
    fields in general, so each is listed with what it does and what becomes of it."""
    for path, text in _dovecot_texts(tree):
        for number, line in enumerate(text.splitlines(), start=1):
            if match := SIEVE_SETTINGS.match(line):
                report.unknown(
                    Where(path, number),
                    f"{match[1]} = {match[2]}: Mailgate's Dovecot runs no script of this "
                    "setting (only its own sieve_before and each user's ~/.dovecot.sieve)",
                )
    for script in tree.find(MAIL_HOME, (".dovecot.sieve", "*.sieve")):
        text = (tree.read(script) or b"").decode(errors="replace")
        does = [what for word, what in SIEVE_ACTIONS.items() if re.search(rf"\b{word}\b", text)]
        local, domain = _owner(script)
        owner = f"{local}@{domain}" if f"{local}@{domain}" in found.mailboxes else ""
        fate = (
            "it keeps running after Mailgate's own script"
            if owner and script == f"{MAIL_HOME}/{domain}/{local}/.dovecot.sieve"
            else "Mailgate's Dovecot does not run it (only ~/.dovecot.sieve)"
        )
        report.unknown(
            Where(script),
            f"a sieve script of {owner or 'no mailbox'}"
            + (f" with {' and '.join(does)}" if does else "")
            + f": not adopted (Mailgate's forward and auto-reply stay off); {fate}",
        )


def _owner(script: str) -> tuple[str, str]:
    """(user, domain) of a script under /var/vmail/<domain>/<user>/."""
    parts = script.removeprefix(MAIL_HOME + "/").split("/")
    return (parts[1], parts[0]) if len(parts) > 2 else ("", "")


def _relay(tree, settings: dict, found: Found, report: Report) -> None:
    hop = settings["relayhost"].value
    where = Where(MAIN_CF, settings["relayhost"].line)
    host, _, port = hop.strip("[").partition("]:") if hop.startswith("[") else hop.partition(":")
    relay = FoundRelay(host.rstrip("]"), int(port or 25), where)
    if level := settings.get("smtp_tls_security_level"):
        relay.tls_level = level.value
    if maps := settings.get("smtp_sasl_password_maps"):
        for _, entries in tables(tree, maps.value, Where(MAIN_CF, maps.line), report):
            for row in entries:
                if row.key in (hop, host, f"[{relay.host}]:{relay.port}"):
                    relay.username, _, relay.password = row.value.partition(":")
    if canonical := settings.get("sender_canonical_maps"):
        kind, _, path = canonical.value.partition(":")
        rules = readers.table((tree.read(path) or b"").decode()) if kind == "regexp" else []
        if len(rules) == 1 and rules[0].key == "/.*/":
            relay.rewrite_sender_to = rules[0].value
        else:
            report.unknown(
                Where(MAIN_CF, canonical.line),
                f"sender_canonical_maps = {canonical.value} (Mailgate rewrites every sender "
                "to one address, or none)",
            )
    found.relay = relay
    report.adopt(where, f"relay {relay.host}:{relay.port}")
