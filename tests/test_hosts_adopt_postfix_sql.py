"""Adopting a Postfix + Dovecot home server whose directory is in MariaDB, as the submission guide
keeps it (docs/adoption.md, SQL tables and users; the guide is the ISPmail guide's "Relaying
outgoing emails through Postfix", docs/reference-setups.md): its ``mysql:`` tables
(``virtual_domains``, ``virtual_users``, ``virtual_aliases``, the ``email2email`` map that lets a
user send as itself) and Dovecot's SQL users, in a real MariaDB (127.0.0.1:3306 here; each test
makes its own database and user, and drops them), read with the ``mysql`` client and the credentials
of the host's own ``.cf`` files: from a copy of the files and over SSH. Every row comes in, every
address routes where it did (the tables' own queries against Mailgate's maps), the password of the
database is in no output, and what cannot be read or expressed is refused with its line, nothing
written."""

import secrets
import subprocess

import pytest
from django.core.management import CommandError, call_command

from gateway.models import Alias, Domain, Mailbox
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import LocalTree, RemoteTree
from hosts.models import Host, TunnelPeer
from hosts.transport import Session
from tests import test_hosts_adopt_postfix as by_hand
from tests.lab_helpers import fingerprint, mail_host_fixture  # noqa: F401 (fixture)
from tests.render_world import HASH
from tests.test_hosts_adopt_postfix import SPOKE, wg0

# The same gateway, tunnel keys and home host as the home server with hash tables.
keys, vps, home = by_hand.keys, by_hand.vps, by_hand.home

SCHEMA = """
CREATE TABLE virtual_domains (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL
);
CREATE TABLE virtual_users (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY, domain_id int NOT NULL,
  email varchar(100) NOT NULL UNIQUE, password varchar(150) NOT NULL,
  quota bigint NOT NULL DEFAULT 0,
  FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE
);
CREATE TABLE virtual_aliases (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY, domain_id int NOT NULL,
  source varchar(100) NOT NULL, destination varchar(100) NOT NULL,
  FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE
);
INSERT INTO virtual_domains (id, name) VALUES (1, 'family.example'), (2, 'other.example');
"""
GIB = 1024**3
USERS = [  # the guide keeps the scheme in the hash, or Dovecot's default_pass_scheme names it
    ("alice@family.example", HASH, GIB),
    ("carol@family.example", HASH.removeprefix("{BLF-CRYPT}"), 0),
    ("bob@other.example", HASH, 2 * GIB),
]
ALIASES = [  # one row per destination, as the guide has them
    ("team@family.example", "alice@family.example"),
    ("team@family.example", "carol@family.example"),
    ("postmaster@family.example", "alice@family.example"),
    ("@other.example", "bob@other.example"),
]
QUERIES = {
    "mysql-virtual-mailbox-domains.cf": "SELECT 1 FROM virtual_domains WHERE name='%s'",
    "mysql-virtual-mailbox-maps.cf": "SELECT 1 FROM virtual_users WHERE email='%s'",
    "mysql-virtual-alias-maps.cf": "SELECT destination FROM virtual_aliases WHERE source='%s'",
    "mysql-email2email.cf": "SELECT email FROM virtual_users WHERE email='%s'",
}
MAIN_CF = """\
myhostname = mail.family.example
virtual_mailbox_domains = mysql:/etc/postfix/mysql-virtual-mailbox-domains.cf
virtual_mailbox_maps = mysql:/etc/postfix/mysql-virtual-mailbox-maps.cf
virtual_alias_maps = proxy:mysql:/etc/postfix/mysql-virtual-alias-maps.cf,
  mysql:/etc/postfix/mysql-email2email.cf
smtpd_sender_login_maps = mysql:/etc/postfix/mysql-email2email.cf
"""
AUTH_SQL = """\
passdb {
  driver = sql
  args = /etc/dovecot/dovecot-sql.conf.ext
}
userdb {
  driver = sql
  args = /etc/dovecot/dovecot-sql.conf.ext
}
"""
DOVECOT_SQL = """\
driver = mysql
connect = "host={host} dbname={name} user={name} password={password}"
default_pass_scheme = BLF-CRYPT
user_query = SELECT email as user, concat('*:bytes=', quota) AS quota_rule, \
'/var/vmail/%d/%n' AS home, 5000 AS uid, 5000 AS gid FROM virtual_users WHERE email='%u'
password_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'
iterate_query = SELECT email AS user FROM virtual_users
"""


def mariadb(statements: str, database: str = "") -> str:
    result = subprocess.run(
        ["mysql", "-h127.0.0.1", "-uroot", "--batch", *([database] if database else [])],
        input=statements,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        pytest.skip(f"MariaDB on 127.0.0.1:3306 is not usable here: {result.stderr.strip()}")
    return result.stdout


@pytest.fixture
def database():
    """A database and user of this test's own, filled as the guide fills it; dropped after."""
    name = f"mg_adopt_{secrets.token_hex(4)}"
    password = f"s3cr#t-{secrets.token_hex(6)}!"
    users = [f"'{name}'@'{where}'" for where in ("localhost", "127.0.0.1")]
    mariadb(
        f"CREATE DATABASE {name};"
        + "".join(f"CREATE USER {u} IDENTIFIED BY '{password}';" for u in users)
        + "".join(f"GRANT SELECT ON {name}.* TO {u};" for u in users)
    )
    rows = ", ".join(f"({1 if '@family' in e else 2}, '{e}', '{h}', {q})" for e, h, q in USERS)
    aliases = ", ".join(f"({1 if 'family' in s else 2}, '{s}', '{d}')" for s, d in ALIASES)
    statements = [
        SCHEMA,
        f"INSERT INTO virtual_users (domain_id, email, password, quota) VALUES {rows};",  # noqa: S608
        f"INSERT INTO virtual_aliases (domain_id, source, destination) VALUES {aliases};",  # noqa: S608
    ]
    mariadb("".join(statements), name)
    yield {"name": name, "password": password}
    mariadb(f"DROP DATABASE {name};" + "".join(f"DROP USER {u};" for u in users))


def built(root, keys, database, host: str = "127.0.0.1", **queries: str) -> LocalTree:
    """The host's /etc as the guide has it: main.cf, a .cf file per table, Dovecot's SQL."""
    wg0(root, SPOKE.format(**keys))
    postfix = root / "etc/postfix"
    postfix.mkdir(parents=True, exist_ok=True)
    (postfix / "main.cf").write_text(MAIN_CF)
    for file, query in {**QUERIES, **queries}.items():
        (postfix / file).write_text(
            f"user = {database['name']}\npassword = {database['password']}\n"
            f"hosts = {host}\ndbname = {database['name']}\nquery = {query}\n"
        )
    (root / "etc/dovecot/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dovecot/conf.d/auth-sql.conf.ext").write_text(AUTH_SQL)
    dovecot_host = host.removeprefix("unix:")
    (root / "etc/dovecot/dovecot-sql.conf.ext").write_text(
        DOVECOT_SQL.format(host=dovecot_host, **database)
    )
    return LocalTree(root)


def test_it_adopts_the_sql_directory_with_nothing_lost(home, tmp_path, keys, database):
    adoption = host_adopt(host=home, tree=built(tmp_path / "home", keys, database))
    assert adoption.report.errors == [] and adoption.report.routing == []
    assert set(Domain.objects.values_list("name", flat=True)) == {"family.example", "other.example"}
    assert {m.address: (m.quota_mb, m.password_hash) for m in Mailbox.objects.all()} == {
        "alice@family.example": (1024, HASH),
        "carol@family.example": (0, HASH),  # the bare hash in Dovecot's default_pass_scheme
        "bob@other.example": (2048, HASH),
    }
    assert Alias.objects.get(local_part="team").destinations == [
        "alice@family.example",
        "carol@family.example",
    ]
    assert Alias.objects.get(domain__name="other.example", local_part="").destinations == [
        "bob@other.example"
    ]
    assert Alias.objects.count() == 3
    report = "\n".join(adoption.report.lines())
    assert "/etc/postfix/mysql-virtual-alias-maps.cf:5: alias team@family.example" in report
    assert "/etc/dovecot/dovecot-sql.conf.ext:5: password of bob@other.example" in report
    assert database["password"] not in report
    assert adoption.plan.destructive == ()


def test_a_copy_that_cannot_reach_the_database_says_so_and_writes_nothing(
    home, tmp_path, keys, database, capsys
):
    tree = built(tmp_path / "home", keys, database, host="127.0.0.1:1")
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", source=str(tree.root))
    printed = capsys.readouterr().out
    assert "/etc/postfix/main.cf:2: mysql:/etc/postfix/mysql-virtual-mailbox-domains.cf" in printed
    assert "--from DIR reaches only a database this machine can reach" in printed, printed
    assert database["password"] not in printed
    assert not Domain.objects.exists() and not Mailbox.objects.exists()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("INSERT INTO virtual_aliases (domain_id, source, destination) VALUES "
         "(1, 'info@family.example', '|/usr/bin/procmail');",
         "/etc/postfix/mysql-virtual-alias-maps.cf:5: info@family.example -> |/usr/bin/procmail: "
         "Mailgate forwards only to addresses"),
        ("INSERT INTO virtual_users (domain_id, email, password) VALUES "
         "(1, 'dave@nowhere.example', 'x');",
         "/etc/postfix/mysql-virtual-mailbox-maps.cf:5: dave@nowhere.example: its domain "
         "nowhere.example is not one the host serves"),
    ],
    ids=["a pipe", "a mailbox of a domain the host does not serve"],
)  # fmt: skip
def test_a_row_mailgate_cannot_express_is_refused_with_its_line(
    home, tmp_path, keys, database, change, said, capsys
):
    mariadb(change, database["name"])
    tree = built(tmp_path / "home", keys, database)
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", source=str(tree.root))
    assert said in capsys.readouterr().out
    assert not Domain.objects.exists() and not TunnelPeer.objects.exists()


def test_a_query_mailgate_cannot_enumerate_is_refused_with_its_line(
    home, tmp_path, keys, database, capsys
):
    query = "SELECT 1 FROM virtual_users WHERE email=CONCAT('%u', '@', '%d')"
    tree = built(tmp_path / "home", keys, database, **{"mysql-virtual-mailbox-maps.cf": query})
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", source=str(tree.root))
    printed = capsys.readouterr().out
    assert "/etc/postfix/mysql-virtual-mailbox-maps.cf:5: " in printed
    assert "is not one Mailgate can enumerate" in printed
    assert not Mailbox.objects.exists()


# --- over SSH: the client runs on the host, reaching MariaDB through its socket ---------------


def test_it_adopts_the_sql_directory_over_ssh_and_changes_nothing(
    home, lab, keys, database, capsys
):
    built(lab.root / "private", keys, database, host="unix:/run/mysqld/mysqld.sock")
    Host.objects.filter(pk=home.pk).update(
        ssh_address=lab.address, ssh_private_key=lab.client_key, ssh_host_key=lab.host_key
    )
    home.refresh_from_db()
    before = fingerprint(lab)
    with Session(home) as session:
        adoption = host_adopt(host=home, tree=RemoteTree(session))
    assert adoption.report.errors == [] and adoption.report.routing == []
    assert Mailbox.objects.count() == 3 and Alias.objects.count() == 3
    assert database["password"] not in "\n".join(adoption.report.lines())
    after = fingerprint(lab)
    assert after == before
    assert adoption.plan.destructive == ()
