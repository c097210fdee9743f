"""Adopt 1,000 mailboxes (10 domains, 100 mailboxes and 100 aliases each): from Mailu's export
(each user with a device password, one in ten with a forward and an auto-reply), and from a
Postfix + Dovecot server's files (tables made with the real postmap, routing compared and the
plan made against the copy).

    .venv/bin/python bench/adopt.py [--mailboxes N] [--repeat N] [--mariadb]

``--mariadb`` adds the submission guide's MariaDB tables (the ISPmail guide,
docs/reference-setups.md) and Dovecot SQL users (a database of its own on 127.0.0.1:3306 as root,
dropped at the end), read with the ``mysql`` client.

Seeds a throwaway SQLite database and prints the best wall time of each adoption, rows written
in one transaction. Goal: under 5 s each.
"""

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import panel

DATA = panel.setup(
    MAILGATE_CONVERGE="false",
)

from django.core.management import call_command
from django.db import transaction

from gateway.models import Domain
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import POSTMAP, LocalTree
from hosts.models import Host, Tunnel, TunnelPeer

HASH = "$2b$04$pgh9Q.MzFFKMHJaF8bCa3unoZJnX/hJ6X2TKIDfR2.yaBQRcWQ2vC"
DOMAINS = 10
TOKEN = "$pbkdf2-sha256$1$4DHOA8Q6n7Pnfs/wLonpHA$5kCvVjKhRCPOXYf8dHhgmEUfW9HFSgJNPyJ9BNrUOF8"
AWAY = {"forward_enabled": True, "forward_destination": ["away@elsewhere.test"],
        "reply_enabled": True, "reply_subject": "Away", "reply_body": "Back soon."}  # fmt: skip


def addresses(mailboxes: int):
    per = mailboxes // DOMAINS
    return [(f"family{d}.example", f"user{m}") for d in range(DOMAINS) for m in range(per)]


def mailu_export(mailboxes: int) -> str:
    boxes = addresses(mailboxes)
    return json.dumps({
        "domain": [{"name": f"family{d}.example"} for d in range(DOMAINS)],
        "user": [{"email": f"{u}@{d}", "password": HASH, "quota_bytes": 1024 * 2**20,
                  "displayed_name": u.title(), "tokens": [{"comment": "phone", "password": TOKEN}],
                  **(AWAY if n % 10 == 0 else {})} for n, (d, u) in enumerate(boxes)],
        "alias": [{"email": f"alias-{u}@{d}", "destination": [f"{u}@{d}"]} for d, u in boxes],
    })  # fmt: skip


def postfix_tree(root: Path, mailboxes: int) -> LocalTree:
    boxes = addresses(mailboxes)
    tables = {
        "vdomains": [f"family{d}.example OK" for d in range(DOMAINS)],
        "vmailbox": [f"{u}@{d} {d}/{u}/" for d, u in boxes],
        "virtual": [f"alias-{u}@{d} {u}@{d}" for d, u in boxes],
    }
    postfix = root / "etc/postfix"
    postfix.mkdir(parents=True)
    (postfix / "main.cf").write_text(
        "virtual_mailbox_domains = hash:/etc/postfix/vdomains\n"
        "virtual_mailbox_maps = hash:/etc/postfix/vmailbox\n"
        "virtual_alias_maps = hash:/etc/postfix/virtual\n"
    )
    for name, rows in tables.items():
        (postfix / name).write_text("".join(f"{row}\n" for row in rows))
        subprocess.run([POSTMAP, f"hash:{postfix / name}"], check=True)  # noqa: S603 (ours)
    (root / "etc/dovecot").mkdir(parents=True)
    (root / "etc/dovecot/dovecot.conf").write_text(
        "passdb {\n  driver = passwd-file\n  args = scheme=BLF-CRYPT /etc/dovecot/users\n}\n"
    )
    (root / "etc/dovecot/users").write_text(
        "".join(f"{u}@{d}:{{BLF-CRYPT}}{HASH}::::::\n" for d, u in boxes)
    )
    return LocalTree(root)


SQL_QUERIES = {
    "virtual_mailbox_domains": "SELECT 1 FROM virtual_domains WHERE name='%s'",
    "virtual_mailbox_maps": "SELECT 1 FROM virtual_users WHERE email='%s'",
    "virtual_alias_maps": "SELECT destination FROM virtual_aliases WHERE source='%s'",
}


DOVECOT_QUERIES = (
    "password_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'\n"
    "user_query = SELECT email AS user, concat('*:bytes=', quota) AS quota_rule "
    "FROM virtual_users WHERE email='%u'\n"
)


def mariadb(statements: str) -> None:
    command = ["mysql", "-h127.0.0.1", "-uroot"]
    subprocess.run(command, input=statements, text=True, check=True)  # noqa: S603 (ours)


def sql_tree(root: Path, mailboxes: int, name: str) -> LocalTree:
    boxes = addresses(mailboxes)
    users = ",".join(f"('{u}@{d}', '{{BLF-CRYPT}}{HASH}', 1073741824)" for d, u in boxes)
    aliases = ",".join(f"('alias-{u}@{d}', '{u}@{d}')" for d, u in boxes)
    domains = ",".join(f"('family{d}.example')" for d in range(DOMAINS))
    mariadb(
        "".join([
            f"CREATE DATABASE {name}; USE {name};",
            "CREATE TABLE virtual_domains (name varchar(50));",
            "CREATE TABLE virtual_users (email varchar(100), password varchar(150), quota bigint);",
            "CREATE TABLE virtual_aliases (source varchar(100), destination varchar(100));",
            f"INSERT INTO virtual_domains VALUES {domains};",  # noqa: S608 (the bench's own rows)
            f"INSERT INTO virtual_users VALUES {users};",  # noqa: S608
            f"INSERT INTO virtual_aliases VALUES {aliases};",  # noqa: S608
        ])
    )  # fmt: skip
    postfix = root / "etc/postfix"
    postfix.mkdir(parents=True)
    credentials = f"user = root\npassword =\nhosts = 127.0.0.1\ndbname = {name}\n"
    main_cf = ""
    for parameter, query in SQL_QUERIES.items():
        (postfix / f"{parameter}.cf").write_text(f"{credentials}query = {query}\n")
        main_cf += f"{parameter} = mysql:/etc/postfix/{parameter}.cf\n"
    (postfix / "main.cf").write_text(main_cf)
    (root / "etc/dovecot").mkdir(parents=True)
    (root / "etc/dovecot/dovecot.conf").write_text(
        "passdb {\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}\n"
    )
    connect = f"driver = mysql\nconnect = host=127.0.0.1 dbname={name} user=root\n"
    (root / "etc/dovecot/dovecot-sql.conf.ext").write_text(connect + DOVECOT_QUERIES)
    return LocalTree(root)


def timed(adopt, repeat: int) -> tuple[float, object]:
    best, adoption = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        adoption = adopt()
        best = min(best, time.perf_counter() - started)
        with transaction.atomic():
            Domain.objects.all().delete()
    return best, adoption


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mariadb", action="store_true")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    vps = Host.objects.create(name="vps", is_gateway=True, gateway_proxy="haproxy",
                              ssh_address="198.51.100.1", public_ipv4="198.51.100.1",
                              tunnel_address="10.8.0.1")  # fmt: skip
    tunnel = Tunnel.objects.create(hub=vps)
    kinds = {"mailu": "mailu", "home": "postfix-dovecot", "sql": "postfix-dovecot"}
    hosts = {
        name: Host.objects.create(
            name=name,
            is_mailserver=True,
            mail_backend=backend,
            ssh_address="198.51.100.2",
            tunnel_address=f"10.8.0.{n}",
            fqdn="mail.example.com",
        )
        for n, (name, backend) in enumerate(kinds.items(), start=2)
    }
    for host in hosts.values():
        TunnelPeer.objects.create(tunnel=tunnel, host=host, routed_subnet="192.168.203.0/24")
    export = ("export.json", mailu_export(options.mailboxes))
    tree = postfix_tree(DATA / "home", options.mailboxes)
    runs = {
        "Mailu export": lambda: host_adopt(host=hosts["mailu"], mailu_export=export),
        "Postfix + Dovecot files": lambda: host_adopt(host=hosts["home"], tree=tree),
    }
    database = f"mailgate_bench_{os.getpid()}"
    if options.mariadb:
        sql = sql_tree(DATA / "sql", options.mailboxes, database)
        runs["Postfix + Dovecot, MariaDB"] = lambda: host_adopt(host=hosts["sql"], tree=sql)
    print(f"{options.mailboxes} mailboxes, {options.mailboxes} aliases, {DOMAINS} domains")
    try:
        for label, adopt in runs.items():
            seconds, adoption = timed(adopt, options.repeat)
            report = adoption.report
            print(f"{label:26} {seconds:6.2f} s  ({len(report.adopted)} adopted, "
                  f"{len(report.routing)} routing differences)")  # fmt: skip
    finally:
        if options.mariadb:
            mariadb(f"DROP DATABASE IF EXISTS {database};")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
