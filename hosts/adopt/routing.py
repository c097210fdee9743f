"""Routing equivalence for Postfix + Dovecot (docs/adoption.md, "The report, then the plan": routing
differences): every address the host's own lookup tables know is looked up, with ``postmap -q`` (a
``mysql:`` table with its own SQL query), in them and in the tables Mailgate renders, and each
answer that differs is reported: a domain or mailbox that would no longer be served, an alias that
would forward elsewhere, a sender that could no longer send as an address.

Postfix searches a parameter's tables in order and takes the first answer (postconf(5)); a
domain or mailbox table is asked only whether it has the key, an alias or sender table what
addresses it gives (in any order)."""

import re
import subprocess
import tempfile
from pathlib import Path

from gateway.bundle import Bundle
from hosts.adopt import sql
from hosts.adopt.sources import POSTMAP
from hosts.render import postfix

RENDERED = {
    "domains": "virtual_domains",
    "mailboxes": "virtual_mailboxes",
    "aliases": "virtual_aliases",
    "senders": "sender_logins",
}
PRESENCE = ("domains", "mailboxes")


def differences(tree, found, bundle: Bundle) -> list[str]:
    rendered = {file.path: file.content for file in bundle.files}
    if f"{postfix.MAPS_DIR}/virtual_aliases" not in rendered:
        return []  # not a Postfix + Dovecot mail server
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        for role, tables in sorted(found.tables.items()):
            keys = sorted({key for _, rows in tables for key in rows})
            before = _first_answers(tree, tables, keys, found.sql_tables)
            path = Path(folder) / RENDERED[role]
            path.write_bytes(rendered.get(f"{postfix.MAPS_DIR}/{RENDERED[role]}", b""))
            after = _answers(_local_postmap(path, keys))
            caught = {key[1:] for key in keys if key.startswith("@") and key in before | after}
            lines += [
                f"{role} {key}: {before.get(key) or 'not found'} before, "
                f"{after.get(key) or 'not found'} after"
                for key in keys
                if _normal(role, key, before.get(key), caught)
                != _normal(role, key, after.get(key), caught)
            ]
    return lines


def _first_answers(tree, tables, keys: list[str], in_sql: dict) -> dict[str, str]:
    """Each key's answer from the first table that has it, as Postfix gives it (``postmap -q``,
    or a table's own SQL query); the rows read for a bare domain name, or a table whose
    database is missing."""
    answers: dict[str, str] = {}
    for name, rows in tables:
        try:
            if name in in_sql:
                found = sql.lookups(tree, *in_sql[name], keys)
            else:
                found = _answers(tree.postmap("-q", "-", table=name, stdin=_keys(keys)))
        except OSError:
            found = rows
        if ":" not in name:
            found = rows
        for key, value in found.items():
            answers.setdefault(key, value)
    return answers


def _local_postmap(path: Path, keys: list[str]) -> str:
    table = f"hash:{path}"
    subprocess.run([POSTMAP, table], check=True, capture_output=True)  # noqa: S603 (ours)
    result = subprocess.run(  # noqa: S603 (postmap on Mailgate's own rendering)
        [POSTMAP, "-q", "-", table],
        input=_keys(keys),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout


def _keys(keys: list[str]) -> str:
    return "".join(f"{key}\n" for key in keys)


def _answers(output: str) -> dict[str, str]:
    """``postmap -q -`` prints ``key<TAB>value`` for each key it finds."""
    return dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)


def _normal(role: str, key: str, value: str | None, caught: set[str]):
    """An answer as routing sees it. An alias of an address to itself (the ``email2email`` map of
    the ISPmail guide, docs/reference-setups.md, which keeps the directory in MariaDB) is no alias,
    where no catch-all of its domain would take the address instead (Postfix tries ``user@domain``,
    then ``@domain``: virtual(5))."""
    if value is None:
        return None
    if role in PRESENCE:
        return True
    targets = frozenset(part for part in re.split(r"[\s,]+", value) if part)
    if role == "aliases" and targets == {key} and key.rpartition("@")[2] not in caught:
        return None
    return targets
