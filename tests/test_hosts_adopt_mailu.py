"""Adopting a Mailu (docs/adoption.md, "Mailu round trip"): Mailu's own admin
(tests/mailu_oracle.py), filled through its own import with several domains, users, alternatives,
managers and aliases, is exported; Mailgate adopts the export, renders its import back, Mailu takes
it (the full replace Mailgate deploys), and Mailu's export afterwards equals the one before for
every field Mailgate models, and for what Mailu keeps through the import. What Mailgate does not
model is listed in the report with its line; bad input is refused with its line and writes
nothing."""

import datetime
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from passlib.hash import bcrypt_sha256, pbkdf2_sha256, sha256_crypt

from gateway import services
from gateway.models import Alias, AppPassword, Domain, Mailbox
from hosts import services as host_services
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import RemoteTree
from hosts.models import Host
from hosts.render import mailu, render_host
from hosts.transport import Session
from lab.hosts import LabHost
from tests.mailu_oracle import mailu_admin_fixture, mailu_admin_process_fixture  # noqa: F401
from tests.named import PASSWORD
from tests.render_world import HASH
from tests.test_render_mailu_oracle import docker_running, run_import_script

pytestmark = pytest.mark.slow  # Mailu's own admin

BARE = HASH.removeprefix("{BLF-CRYPT}")
MIB = 1024 * 1024
# Device passwords made in Mailu (its tokens are 32 hex digits, kept as pbkdf2_sha256 with one
# round: Token.set_password) and one Mailgate made before (SHA256-CRYPT, which Mailu verifies).
PHONE, LAPTOP, TABLET = "0123456789abcdef0123456789abcdef", "ab" * 16, "cd" * 16
FETCH = {"protocol": "imap", "host": "imap.old-provider.test", "port": 993, "tls": True,
         "username": "carol.old", "password": "fetch-secret", "keep": True, "scan": False,
         "folders": ["INBOX", "Archive"]}  # fmt: skip
FILLED = {
    "domain": [
        {"name": "family.example", "alternatives": ["family.test"], "comment": "ours"},
        {"name": "other.example", "max_users": 10, "max_aliases": 20,
         "max_quota_bytes": 4096 * MIB, "signup_enabled": True},
        {"name": "xn--bcher-kva.example", "comment": "a Unicode name"},
    ],
    "user": [
        {"email": "alice@family.example", "password": BARE, "displayed_name": "Alice",
         "quota_bytes": 2048 * MIB, "manager_of": ["family.example"], "global_admin": True,
         "tokens": [
             {"comment": "Alice's phone", "ip": ["192.0.2.0/24"],
              "password": pbkdf2_sha256.using(rounds=1).hash(PHONE)},
             {"comment": "laptop", "password": sha256_crypt.using(rounds=5000).hash(LAPTOP)},
         ]},
        {"email": "carol@family.example", "password": BARE, "quota_bytes": 0,
         "comment": "Carol's", "allow_spoofing": True, "spam_mark_as_read": False,
         "forward_enabled": True, "forward_keep": False,
         "forward_destination": ["carol@elsewhere.test", "alice@family.example"],
         "reply_enabled": True, "reply_subject": "Away", "reply_body": "Back on Monday.\nCarol",
         "reply_startdate": "2026-12-20", "reply_enddate": "2027-01-05",
         "spam_enabled": False, "spam_threshold": 60, "enable_pop": False,
         "fetches": [FETCH]},
        {"email": "bob@other.example", "password": BARE, "displayed_name": "Bob B.",
         "quota_bytes": 512 * MIB, "manager_of": ["other.example"], "enable_imap": False,
         "change_pw_next_login": True,
         "tokens": [{"comment": "", "password": pbkdf2_sha256.using(rounds=1).hash(TABLET)}],
         "fetches": [{**FETCH, "protocol": "pop3", "port": 995, "username": "bob",
                      "folders": []}]},
        {"email": "reader@xn--bcher-kva.example", "password": BARE, "quota_bytes": 10 * MIB,
         "comment": "reads", "reply_enabled": False, "reply_subject": "Kept while off",
         "reply_body": "Text",
         "forward_enabled": False, "forward_destination": ["kept-while-off@elsewhere.test"]},
    ],
    "alias": [
        {"email": "team@family.example", "comment": "the family",
         "destination": ["alice@family.example", "carol@family.example"]},
        {"email": "%@other.example", "destination": ["bob@other.example"], "wildcard": True},
        {"email": "info@xn--bcher-kva.example", "destination": ["reader@xn--bcher-kva.example"]},
    ],
}  # fmt: skip


@pytest.fixture
def filled(mailu_admin, tmp_path):
    """A Mailu filled through its own import, and its export as YAML (as a person runs it)."""
    admin = mailu_admin({"SECRET_KEY": "0123456789abcdef"})
    applied = admin.apply(json.dumps(FILLED).encode())
    assert applied.ok, applied.output
    path = tmp_path / "export.yaml"
    exported = admin.flask("mailu", "config-export", "--full", "--secrets", "-o", str(path))
    assert exported.ok, exported.output
    return admin, path


@pytest.fixture
def home(db):
    return Host.objects.create(
        name="home",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address="192.0.2.2",
        tunnel_address="10.8.0.2",
        fqdn="mail.family.example",
    )


def comparable(export: dict) -> dict:
    """Mailu's whole export, with only what cannot be equal by nature made equal:
    - a token's or fetched account's ``id`` is the row's primary key, which the database
      numbers as rows are made: Mailgate's import script makes every token anew (the fetches
      survive the import as rows of their own, but their ids are no promise either);
    - each list Mailu keeps as a set or in insertion order, sorted: the import recreates the
      rows, so only their content is the same (``forward_destination``, ``alternatives``,
      ``manager_of``, an alias's ``destination``, a user's tokens and fetches).
    Everything else, every field of every domain, user, token, fetch, alias and relay, must be
    what it was: a deployment that reset anything Mailu held fails here."""

    def rows(section):
        return sorted((tidy(row) for row in export[section]), key=json.dumps)

    def tidy(row: dict) -> dict:
        row = {k: sorted(v, key=json.dumps) if isinstance(v, list) else v for k, v in row.items()}
        for held in ("tokens", "fetches"):
            if held in row:
                row[held] = sorted(
                    ({k: v for k, v in each.items() if k != "id"} for each in row[held]),
                    key=json.dumps,
                )
        return row

    assert set(export) == {"domain", "user", "alias", "relay"}, sorted(export)
    return {section: rows(section) for section in export}


def differences(before: dict, after: dict) -> list[str]:
    """Each field of each row that is not what it was, by the row's name."""
    found = []
    for section, rows in before.items():
        key = "name" if section in ("domain", "relay") else "email"
        was = {row[key]: row for row in rows}
        now = {row[key]: row for row in after[section]}
        found += [f"{section} {name}: gone" for name in was.keys() - now.keys()]
        found += [f"{section} {name}: new" for name in now.keys() - was.keys()]
        for name in was.keys() & now.keys():
            fields = was[name].keys() | now[name].keys()
            found += [
                f"{section} {name}: {field} {was[name].get(field)!r} -> {now[name].get(field)!r}"
                for field in sorted(fields)
                if was[name].get(field) != now[name].get(field)
            ]
    return found


def adopt(*arguments, **options) -> str:
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    call_command("adopt", *arguments, stdout=Out(), **options)
    return "".join(lines)


def test_mailu_holds_after_the_deployment_what_it_held_before(filled, home):
    admin, path = filled
    get_user_model().objects.create_user("alice@family.example")
    before = admin.export()
    output = adopt(host="home", mailu_export=str(path))
    assert Mailbox.objects.count() == 4 and Alias.objects.count() == 3
    assert Domain.objects.get(name="family.example").managers.get().username.startswith("alice")
    carol = Mailbox.objects.get(local_part="carol")
    assert carol.forward_to == ["alice@family.example", "carol@elsewhere.test"]  # as Mailu sorts
    assert (carol.forward_keep_copy, carol.autoreply_enabled, carol.autoreply_subject) == (
        False, True, "Away"
    )  # fmt: skip
    assert (carol.autoreply_start, carol.autoreply_end) == (
        datetime.date(2026, 12, 20), datetime.date(2027, 1, 5)
    )  # fmt: skip
    assert (carol.spam_enabled, carol.spam_threshold, carol.imap_enabled, carol.pop3_enabled) == (
        False, 60, True, False
    )  # fmt: skip
    devices = dict(AppPassword.objects.values_list("name", "password_hash"))
    assert devices.keys() == {"Alice's phone", "laptop", "Mailu token 1"}
    assert devices["laptop"].startswith("{SHA256-CRYPT}$5$")
    assert devices["Alice's phone"].startswith("$pbkdf2-sha256$")  # Mailu's hash, as it is

    # Deployed back as the activation runs it: Mailgate's import script with its document.
    document = render_host(home).file(mailu.IMPORT_PATH).content
    done = run_import_script(admin, document)
    assert done.returncode == 0, done.stderr
    after = admin.export()
    changed = differences(comparable(before), comparable(after))
    assert not changed, "\n".join(changed)
    # The devices still log in, each where its protocols allow.
    assert admin.accepted_logins("alice@family.example", "imap", PHONE, LAPTOP, TABLET) == [
        True, True, False
    ]  # fmt: skip
    assert admin.accepted_logins("bob@other.example", "pop3", TABLET) == [True]

    # What Mailgate does not model is listed where the export says it, never dropped.
    for said in (
        "user carol@family.example: allow_spoofing = True (Mailu keeps it",
        "user carol@family.example: fetches = imap://carol.old@imap.old-provider.test:993",
        'user alice@family.example: token "Alice\'s phone" only from 192.0.2.0/24 (Mailu keeps',
        "user bob@other.example: token 1 is named 'Mailu token 1' in Mailgate",
        "domain family.example: alternatives = ['family.test'] (Mailu keeps it",
        "domain other.example: max_users = 10",
        "alias team@family.example: comment = 'the family' (Mailu keeps it",
        "user reader@bücher.example: forward_destination = ['kept-while-off@elsewhere.test'] "
        "while forwarding is off (Mailu keeps it",
        "bob@other.example manages other.example in Mailu but has no panel account",
    ):
        assert said in output, output
    assert "fetch-secret" not in output
    assert re.search(rf"{re.escape(str(path))}:\d+: user carol@family.example: fetches", output)


def test_a_dry_run_reports_and_writes_nothing(filled, home):
    _, path = filled
    output = adopt(host="home", mailu_export=str(path), dry_run=True)
    assert "mailbox alice@family.example" in output and "Dry run: nothing was written." in output
    assert not Domain.objects.exists()


@pytest.mark.parametrize(
    ("rewrite", "said"),
    [
        (lambda text: text.replace("%@other.example", "sales-%@other.example"),
         r":\d+: wildcard alias sales-%@other.example: Mailgate's only pattern is the catch-all"),
        (lambda text: text + "\n  - [unclosed\n", r":\d+: not YAML or JSON"),
        (lambda text: text.replace("bob@other.example", "bob!@other.example", 1),
         r":\d+: mailbox bob!@other.example: local_part"),
        (lambda text: text.replace("carol@elsewhere.test", "carol@family.example"),
         r":\d+: mailbox carol@family.example: forward_to: A mailbox cannot forward to itself"),
        (lambda text: text.replace("spam_threshold: 60", "spam_threshold: 160"),
         r":\d+: mailbox carol@family.example: spam_threshold: "),
        (lambda text: text.replace("comment: laptop", f"comment: {'x' * 101}"),
         r":\d+: device password 'x+' of alice@family.example: name: "),
    ],
    ids=["a pattern alias", "malformed", "an address Mailgate refuses", "a forward to itself",
         "a spam threshold over 100", "a device name too long"],
)  # fmt: skip
def test_bad_input_is_refused_with_its_line_and_nothing_is_written(
    filled, home, rewrite, said, capsys
):
    _, path = filled
    path.write_text(rewrite(path.read_text()))
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", mailu_export=str(path))
    assert re.search(re.escape(str(path)) + said, capsys.readouterr().out)
    assert not Domain.objects.exists() and not Mailbox.objects.exists()
    assert not AppPassword.objects.exists()


def test_a_forwarding_loop_mailu_holds_is_refused_and_nothing_is_written(
    mailu_admin, home, tmp_path, capsys
):
    """Mailu lets each row be made on its own: alice forwards to the team alias, which reaches
    carol, who forwards to alice. Mailgate's models refuse a loop; so does the adoption."""
    admin = mailu_admin({"SECRET_KEY": "0123456789abcdef"})
    looped = json.loads(json.dumps(FILLED))
    looped["user"][0].update(forward_enabled=True, forward_destination=["team@family.example"])
    assert admin.apply(json.dumps(looped).encode()).ok
    path = tmp_path / "export.yaml"
    assert admin.flask("mailu", "config-export", "--full", "--secrets", "-o", str(path)).ok
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("adopt", host="home", mailu_export=str(path))
    printed = capsys.readouterr().out
    assert re.search(r":\d+: a forwarding loop: \S+ -> .* \(Mailgate refuses one", printed), printed
    assert not Mailbox.objects.exists() and not AppPassword.objects.exists()


def test_a_hash_dovecot_cannot_verify_is_reported_for_a_postfix_dovecot_host(filled, home):
    """Moving from Mailu to Postfix + Dovecot: Mailu's own token hashes (pbkdf2_sha256) and its
    default password hash (bcrypt_sha256) are kept, and each is named as one that will not log
    in there; bcrypt and SHA256-CRYPT hashes will."""
    _, path = filled
    text = path.read_text().replace(BARE, bcrypt_sha256.hash("a password"), 1)
    path.write_text(text)
    Host.objects.filter(pk=home.pk).update(mail_backend="postfix-dovecot")
    output = adopt(host="home", mailu_export=str(path), dry_run=True)
    for said in (
        "mailbox alice@family.example: its password hash (bcrypt-sha256) is one Dovecot cannot",
        'mailbox alice@family.example: device password "Alice\'s phone" (pbkdf2-sha256) is a '
        "hash Dovecot cannot verify",
        "mailbox bob@other.example: device password 'Mailu token 1' (pbkdf2-sha256)",
    ):
        assert said in output, output
    assert (
        "device password 'laptop' (" not in output
        and "carol@family.example: its password" not in output
    )


# --- the first deployment to a Mailu that holds what Mailgate does not know ---------------------


@pytest.fixture
def lab():
    host = LabHost.create(private_dirs=("/opt/mailu", "/usr/local/bin"))
    yield host
    host.close()


@pytest.fixture
def running(db, filled, lab):
    """A real host over SSH whose Mailu (the filled one) answers ``docker compose exec admin``."""
    admin, _ = filled
    docker_running(admin, lab.root / "private/usr/local/bin")
    (lab.root / "private/opt/mailu/docker-compose.yml").write_text("services: {}\n")
    return Host.objects.create(
        name="mailu",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address=lab.address,
        ssh_private_key=lab.client_key,
        ssh_host_key=lab.host_key,
        tunnel_address="10.8.0.2",
        fqdn="mail.family.example",
    )


def test_a_first_import_that_would_drop_what_mailu_holds_is_destructive_until_adopted(running, lab):
    services.domain_create(
        name="family.example",
        mail_hostname="mail.family.example",
        first_mailbox="alice",
        first_mailbox_password=PASSWORD,
    )
    removes = host_services.host_plan(host=running).destructive
    assert "mailbox carol@family.example" in removes and "domain other.example" in removes
    assert "alias @other.example" in removes and "mailbox alice@family.example" not in removes
    # Mailgate has alice, without the device passwords Mailu holds for her: they would go too.
    assert len([r for r in removes if r.startswith("device password alice@family.example")]) == 2

    with Session(running) as session:
        adoption = host_adopt(host=running, tree=RemoteTree(session))
    report = "\n".join(adoption.report.lines())
    assert "domain family.example is in Mailgate already" in report
    assert "device password 'laptop' added to alice@family.example" in report
    laptop = AppPassword.objects.get(name="laptop").password_hash
    assert host_services.host_plan(host=running).destructive == ()
    # Revoked before the first import, Mailu's token would go: asked. Once Mailgate's document
    # is on the host, a device password revoked in Mailgate goes without asking.
    AppPassword.objects.filter(name="laptop").delete()
    assert len(host_services.host_plan(host=running).destructive) == 1
    AppPassword.objects.create(
        mailbox=Mailbox.objects.get(local_part="alice"), name="laptop", password_hash=laptop
    )
    deployed = lab.root / f"private{mailu.IMPORT_PATH}"
    deployed.parent.mkdir(parents=True)
    deployed.write_bytes(render_host(running).file(mailu.IMPORT_PATH).content)
    AppPassword.objects.filter(name="laptop").delete()
    assert host_services.host_plan(host=running).destructive == ()
