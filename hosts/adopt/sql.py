"""Lookup tables and Dovecot users in MySQL / MariaDB, as the submission guide keeps them (the
ISPmail guide's "Relaying outgoing emails through Postfix", docs/reference-setups.md; the ISPmail
schema: ``virtual_domains.name``, ``virtual_users.email`` and ``password``,
``virtual_aliases.source`` and ``destination``), read with the database client where the tree is:
``mysql`` on the host over SSH, or on this machine for a copy of the files (``--from DIR``), with
the credentials of the table's own ``.cf`` file (mysql_table(5)) or of Dovecot's ``connect`` line.
The credentials go to the client on its standard input as an option file
(``--defaults-extra-file=/dev/stdin``), so no password is in a command line, a log or the report.

Every row is enumerated from the lookup's own query: ``SELECT <result> FROM <tables> WHERE
<key column> = '%s'`` becomes ``SELECT <key column>, <result> FROM <tables> WHERE 1 = 1`` (the
other conditions kept), and the rows of one key are joined with commas, as Postfix joins them. A
query Mailgate cannot turn so (no ``'%s'`` compared with a column, another ``%`` expansion, a
``result_format``) is refused with its line. The routing comparison asks the original queries,
one per key, in one statement (``lookups``).
"""

import re
from dataclasses import dataclass

from hosts.adopt import readers
from hosts.adopt.report import Where

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<result>.+?)\s+FROM\s+(?P<source>.+?)\s+WHERE\s+(?P<where>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EXPANSION = re.compile(r"%[a-zA-Z]")
_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}


class Unreadable(ValueError):
    """A table or users query Mailgate cannot enumerate; ``where`` is its line."""

    def __init__(self, where: Where, message: str):
        self.where = where
        super().__init__(message)


@dataclass(frozen=True)
class Connection:
    """Where the database is and who logs in (mysql_table(5) ``hosts``, ``user``, ``password``,
    ``dbname``); ``str()`` names it without the password."""

    hosts: tuple[str, ...]
    user: str
    password: str
    dbname: str

    def __str__(self) -> str:
        return f"database {self.dbname} on {' '.join(self.hosts)} as {self.user}"

    def option_files(self) -> list[str]:
        """One ``[client]`` option file per host to try, in order (Postfix tries the next
        host when one fails)."""
        return [_option_file(host, self.user, self.password, self.dbname) for host in self.hosts]


@dataclass(frozen=True)
class Query:
    """A lookup query split at its key: ``SELECT result FROM source WHERE ... key = '%s'``."""

    text: str
    key_column: str
    expansion: str  # %s for Postfix, %u for Dovecot
    where: Where

    def enumeration(self) -> str:
        match = _QUERY.match(self.text)
        rest = _key_condition(self.expansion).sub("1 = 1", match["where"], count=1)
        result = _EXPANSION.sub("", match["result"])  # Dovecot's %d, %n in a home: not read
        # The host's own query, run with its own credentials; nothing of Mailgate's is in it.
        return f"SELECT {self.key_column}, {result} FROM {match['source']} WHERE {rest}"  # noqa: S608

    def lookup(self, key: str) -> str:
        return self.text.replace(f"'{self.expansion}'", _literal(key))


def _key_condition(expansion: str) -> re.Pattern:
    return re.compile(rf"([\w.`]+)\s*=\s*'{re.escape(expansion)}'")


def _literal(value: str) -> str:
    """A MySQL string literal (what mysql_real_escape_string makes of it, quoted)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return f"'{escaped}'"


def _option_file(host: str, user: str, password: str, dbname: str) -> str:
    if host.startswith(("unix:", "/")):
        place = {"socket": host.removeprefix("unix:")}
    else:
        name, colon, port = host.removeprefix("inet:").partition(":")
        place = {"host": name, **({"port": port} if colon else {})}
    options = {**place, "user": user, "password": password, "database": dbname}
    body = "".join(f'{key}="{_option_value(value)}"\n' for key, value in options.items())
    return f"[client]\n{body}"


def _option_value(value: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError("a database credential with a control character")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def query(text: str, expansion: str, where: Where, *, in_result: bool = False) -> Query:
    """``text`` split at its key, or Unreadable saying why Mailgate cannot enumerate it;
    ``in_result``: other expansions may stand in the result columns (Dovecot's home)."""
    match = _QUERY.match(text)
    if match is None:
        raise Unreadable(where, f"not 'SELECT ... FROM ... WHERE ...': {text!r}")  # noqa: S608
    keys = _key_condition(expansion).findall(match["where"])
    others = set(_EXPANSION.findall(match["where"] + match["source"])) - {expansion}
    if not in_result:
        others |= set(_EXPANSION.findall(match["result"]))
    if len(keys) != 1 or others or text.count(f"'{expansion}'") != 1:
        raise Unreadable(
            where,
            f"the query {text!r} is not one Mailgate can enumerate: it must compare one column "
            f"with '{expansion}' and use no other expansion",
        )
    return Query(text, keys[0], expansion, where)


# --- Postfix: mysql:/etc/postfix/x.cf (mysql_table(5)) ------------------------------------------


def postfix_table(text: str, path: str) -> tuple[Connection, Query]:
    """A ``mysql:`` table's ``.cf`` file: its connection and query (the old ``table``,
    ``select_field``, ``where_field``, ``additional_conditions`` form too)."""
    try:
        settings = readers.main_cf(text)
    except readers.Unreadable as exc:
        raise Unreadable(Where(path, exc.line), str(exc)) from None

    def value(name: str, default: str = "") -> str:
        return settings[name].value if name in settings else default

    if value("result_format", "%s") != "%s":
        line = settings["result_format"].line
        raise Unreadable(
            Where(path, line), "result_format other than %s: Mailgate's maps give the row as it is"
        )
    if "query" in settings:
        where = Where(path, settings["query"].line)
        text = settings["query"].value
    elif "table" in settings:
        where = Where(path, settings["table"].line)
        text = (  # the old form of the host's own query (mysql_table(5))
            f"SELECT {value('select_field')} FROM {value('table')} "  # noqa: S608
            f"WHERE {value('where_field')} = '%s' {value('additional_conditions')}"
        )
    else:
        raise Unreadable(Where(path, 1), "no query (nor table and where_field)")
    hosts = tuple(re.split(r"[\s,]+", value("hosts", "localhost").strip()))
    connection = Connection(hosts, value("user"), value("password"), value("dbname"))
    return connection, query(text, "%s", where)


def rows(tree, connection: Connection, lookup: Query) -> list[readers.Entry]:
    """Every key the table answers and its answer (several rows joined with ', ')."""
    answers: dict[str, list[str]] = {}
    for key, *values in run(tree, connection, lookup.enumeration())[1]:
        answers.setdefault(key.lower(), []).append(",".join(v for v in values if v != "NULL"))
    return [readers.Entry(lookup.where.line, k, ", ".join(v)) for k, v in answers.items()]


def lookups(tree, connection: Connection, lookup: Query, keys: list[str]) -> dict[str, str]:
    """Each key's answer from the table's own query, as Postfix asks it (one statement)."""
    if not keys:
        return {}
    union = " UNION ALL ".join(  # each key a quoted literal, in the host's own query
        f"SELECT {_literal(key)} AS mailgate_key, answer.* FROM ({lookup.lookup(key)}) AS answer"  # noqa: S608
        for key in keys
    )
    answers: dict[str, list[str]] = {}
    for key, *values in run(tree, connection, union)[1]:
        answers.setdefault(key, []).append(",".join(v for v in values if v != "NULL"))
    return {key: ", ".join(values) for key, values in answers.items()}


def run(tree, connection: Connection, statement: str) -> tuple[list[str], list[list[str]]]:
    """The statement's column names and rows, through the first host that answers."""
    failures = []
    for options in connection.option_files():
        try:
            output = tree.mysql(options, statement)
        except OSError as exc:
            failures.append(str(exc))
            continue
        lines = [[_unescaped(field) for field in line.split("\t")] for line in output.splitlines()]
        return (lines[0], lines[1:]) if lines else ([], [])
    raise OSError(f"{connection}: {'; '.join(failures)}")


def _unescaped(field: str) -> str:
    """``mysql --batch`` writes a tab, a newline, a backslash and NUL escaped."""
    return re.sub(r"\\[\\tn0]", lambda m: _ESCAPES[m.group()], field)


# --- Dovecot: passdb { driver = sql  args = /etc/dovecot/dovecot-sql.conf.ext } -----------------


@dataclass(frozen=True)
class DovecotUsers:
    connection: Connection
    password_query: Query
    user_query: Query | None
    scheme: str


def dovecot_users(text: str, path: str) -> DovecotUsers | None:
    """Dovecot's SQL configuration (``driver``, ``connect``, ``default_pass_scheme``,
    ``password_query``, ``user_query``; doc.dovecot.org, "SQL"); None for one that names no
    driver (Debian's own, all comments, which only an ``!include`` would bring in)."""
    try:
        settings = readers.main_cf(text)
    except readers.Unreadable as exc:
        raise Unreadable(Where(path, exc.line), str(exc)) from None
    driver = settings.get("driver")
    if driver is None:
        return None
    if driver.value != "mysql":
        raise Unreadable(
            Where(path, driver.line), "Mailgate reads Dovecot's SQL users from mysql only"
        )
    if "password_query" not in settings:
        raise Unreadable(Where(path, 1), "no password_query")
    connect = _connect(settings["connect"].value if "connect" in settings else "")
    host = connect.get("host", "localhost")
    connection = Connection(
        (f"{host}:{connect['port']}" if "port" in connect else host,),
        connect.get("user", ""),
        connect.get("password", ""),
        connect.get("dbname", ""),
    )

    def split(name: str) -> Query:
        where = Where(path, settings[name].line)
        return query(settings[name].value, "%u", where, in_result=True)

    scheme = settings["default_pass_scheme"].value if "default_pass_scheme" in settings else ""
    user_query = split("user_query") if "user_query" in settings else None
    return DovecotUsers(connection, split("password_query"), user_query, scheme or "MD5")


def _connect(value: str) -> dict[str, str]:
    """``host=... dbname=... user=... password=...``, the whole line or each value quoted."""
    value = value.strip()
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = value[1:-1]
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', value)
    return {key: raw[1:-1] if raw.startswith('"') else raw for key, raw in pairs}


def users(tree, found: DovecotUsers) -> dict[str, dict[str, str]]:
    """Each user's fields (``password``, ``userdb_quota_rule`` / ``quota_rule``), by user."""
    held: dict[str, dict[str, str]] = {}
    for lookup in filter(None, (found.password_query, found.user_query)):
        names, rows_ = run(tree, found.connection, lookup.enumeration())
        for key, *values in rows_:
            held.setdefault(key.lower(), {}).update(zip(names[1:], values, strict=False))
    return held
