"""A mailbox's own settings on Postfix + Dovecot (docs/mailbox-features.md, "Postfix + Dovecot"),
proven with the real tools: Pigeonhole runs each rendered Sieve script (``sievec``,
``sieve-test -e`` with a stand-in sendmail), a running Dovecot authenticates against the rendered
passdbs (``doveadm auth test`` per service), and Postfix gets postsrsd's SRS lookups where mail is
forwarded out."""

import dataclasses
import datetime
import imaplib
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gateway.bundle import RenderError
from gateway.passwords import hash_device_password
from gateway.selectors import DevicePassword, mail_directory
from hosts import usage
from hosts.checks import run_check
from hosts.render import dovecot, postsrsd, render, sieve
from tests.render_world import context, directory, hosts, with_directory
from tests.servers import free_port

pytestmark = pytest.mark.django_db  # render() asks the other apps' contributors

CAROL = directory().mailboxes[2]
DEVICE_PASSWORD = "0123456789abcdef0123456789abcdef"
MAIN_PASSWORD = "correct horse battery staple"


def carol(**settings):
    return dataclasses.replace(CAROL, **settings)


def world_with(*mailboxes):
    """The reference world (tests/render_world.py), its mailboxes replaced by ``mailboxes`` where
    the address matches."""
    by_address = {box.address: box for box in mailboxes}
    boxes = tuple(by_address.get(box.address, box) for box in directory().mailboxes)
    return with_directory(context(hosts(), "home"), mailboxes=boxes)


# --- Sieve ------------------------------------------------------------------------------------


@pytest.fixture
def open_folder():
    """Makes folders that Dovecot's processes, which drop to the mail user (nobody) and the
    dovecot user, can reach: pytest's own folders are root's alone."""
    with tempfile.TemporaryDirectory(prefix="mailgate-dovecot-") as base:
        Path(base).chmod(0o755)

        def make() -> Path:
            folder = Path(tempfile.mkdtemp(dir=base))
            folder.chmod(0o777)
            return folder

        yield make


@pytest.fixture
def pigeonhole(open_folder):
    """Makes a ``Pigeonhole`` for a script."""
    return lambda script: Pigeonhole(open_folder(), script)


class Pigeonhole:
    """Dovecot's own delivery agent (``dovecot-lda``) with Pigeonhole, running the script as
    the rendered configuration does (``sieve_before``), as the mail user (nobody): replies and
    forwards go to a stand-in sendmail that writes each to a file, and the vacation's memory of
    whom it answered (the duplicate database in the mailbox's home) lasts between messages."""

    def __init__(self, folder: Path, script: bytes | None):
        self.folder = folder
        if script is not None:  # None: the mailbox has no script, as most have
            (folder / "carol.sieve").write_bytes(script)
        self.sent = folder / "sent"
        self.sent.mkdir()
        self.sent.chmod(0o777)
        sendmail = folder / "sendmail"
        sendmail.write_text(
            f'#!/bin/sh\nf=$(mktemp -p {self.sent})\n{{ echo "$*"; cat; }} > "$f"\n'
        )
        sendmail.chmod(0o755)
        self.config = folder / "lda.conf"
        self.config.write_text(
            f"mail_location = maildir:{folder}/Maildir\n"
            f"sendmail_path = {sendmail}\n"
            f"base_dir = {folder}/run\n"
            "log_path = /dev/stderr\n"
            "protocol lda {\n  mail_plugins = sieve\n  postmaster_address = pm@x.example\n}\n"
            f"plugin {{\n  sieve_before = {folder}/carol.sieve\n}}\n"
        )
        self.config.chmod(0o644)

    def deliver(
        self, headers: str, sender: str = "bob@example.org", to: str = CAROL.address
    ) -> str:
        message = f"{headers}\nTo: {to}\nSubject: hi\n\nHello.\n"
        result = subprocess.run(
            [
                *("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"),
                *("/usr/lib/dovecot/dovecot-lda", "-c", str(self.config)),
                *("-f", sender, "-a", CAROL.address),
            ],
            input=message,
            capture_output=True,
            text=True,
            env={"HOME": str(self.folder), "USER": CAROL.address, "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    def messages(self) -> list[str]:
        return [path.read_text() for path in sorted(self.sent.iterdir())]


AWAY = {
    "autoreply_enabled": True,
    "autoreply_subject": 'Away: "the cat" \\ ${x}',
    "autoreply_body": "Back on Monday.\n.\nC.",
}


def test_an_auto_reply_answers_a_sender_once_in_its_days(pigeonhole):
    ctx = world_with(carol(**AWAY))
    mailbox = pigeonhole(dovecot.sieve_scripts(ctx)["carol@family.example"])
    first = mailbox.deliver("From: bob@example.org\nMessage-ID: <1@example.org>")
    assert "sent vacation response to <bob@example.org>" in first
    second = mailbox.deliver("From: bob@example.org\nMessage-ID: <2@example.org>")
    assert "discarded duplicate vacation response to <bob@example.org>" in second
    [reply] = mailbox.messages()
    assert 'Subject: Away: "the cat" \\ ${x}' in reply
    assert "Auto-Submitted: auto-replied" in reply
    assert "Back on Monday.\n.\nC." in reply.replace("\r\n", "\n")


def test_an_auto_reply_answers_mail_to_an_alias_of_the_mailbox_too(pigeonhole):
    """team@family.example delivers to carol (the reference directory): mail sent to the alias
    is answered; mail that names neither (a Bcc, a list) is not."""
    mailbox = pigeonhole(dovecot.sieve_scripts(world_with(carol(**AWAY)))[CAROL.address])
    to_team = mailbox.deliver("From: bob@example.org\nMessage-ID: <6@x>", to="team@family.example")
    assert "sent vacation response to <bob@example.org>" in to_team
    unnamed = mailbox.deliver(
        "From: eve@example.org\nMessage-ID: <7@x>", "eve@example.org", to="list@elsewhere.example"
    )
    assert "sent vacation response" not in unnamed


RFC_3834 = {
    "a mailing list": "From: list@example.org\nList-Id: <family.lists.example.org>",
    "bulk mail": "From: news@example.org\nPrecedence: bulk",
    "an automatic sender": "From: robot@example.org\nAuto-Submitted: auto-generated",
    "a noreply address": "From: noreply@example.org",
}


@pytest.mark.parametrize("headers", RFC_3834.values(), ids=RFC_3834.keys())
def test_an_auto_reply_never_answers_lists_bulk_or_automatic_senders(pigeonhole, headers):
    script = sieve.script(carol(**AWAY))
    sender = headers.split("\n")[0].removeprefix("From: ")
    output = pigeonhole(script).deliver(f"{headers}\nMessage-ID: <3@x>", sender)
    assert "sent vacation response" not in output


def test_an_auto_reply_answers_only_between_its_first_and_last_day(pigeonhole):
    today = datetime.date.today()
    days = datetime.timedelta(days=2)
    for start, end, answers in (
        (today - days, today + days, True),
        (today + days, None, False),
        (None, today - days, False),
    ):
        script = sieve.script(carol(**AWAY, autoreply_start=start, autoreply_end=end))
        output = pigeonhole(script).deliver("From: bob@example.org\nMessage-ID: <4@x>")
        assert ("sent vacation response" in output) is answers, (start, end)


def test_a_forward_keeps_a_copy_only_when_asked(pigeonhole):
    for keep in (True, False):
        forwards = ("x@example.org", "y@elsewhere.example")
        mailbox = pigeonhole(sieve.script(carol(forward_to=forwards, forward_keep_copy=keep)))
        output = mailbox.deliver("From: bob@example.org\nMessage-ID: <5@x>")
        assert "forwarded to <x@example.org>" in output
        assert "forwarded to <y@elsewhere.example>" in output
        assert ("stored mail into mailbox 'INBOX'" in output) is keep
        assert len(mailbox.messages()) == 2


def test_a_mailbox_without_settings_has_no_script_and_gets_its_mail(pigeonhole):
    assert sieve.script(CAROL) is None
    assert dovecot.sieve_scripts(world_with()) == {}
    output = pigeonhole(None).deliver("From: bob@example.org\nMessage-ID: <8@x>")
    assert "saved mail to INBOX" in output  # Pigeonhole skips a sieve_before file not there


def test_the_staged_check_compiles_each_script_and_fails_on_a_broken_one(tmp_path):
    bundle = render(world_with(carol(**AWAY, forward_to=("x@example.org",))))
    stage = tmp_path / "stage"
    bundle.write_to(stage)
    check = bundle.unit("dovecot").checks[1]
    assert run_check("dovecot", check, stage).ok
    staged = stage / "etc/dovecot/mailgate-sieve/carol@family.example.sieve"
    staged.write_text(staged.read_text().replace("redirect", "redirekt"))
    result = run_check("dovecot", check, stage)
    assert not result.ok
    assert "redirekt" in result.output


def test_a_control_character_that_slipped_past_validation_is_refused():
    with pytest.raises(RenderError):
        sieve.script(carol(**{**AWAY, "autoreply_body": "Away\x00."}))


# --- Dovecot: per-protocol access and device passwords ---------------------------------------


@pytest.fixture
def running_dovecot(open_folder):
    """A Dovecot with exactly the rendered passdbs, their files staged under ``tmp_path``;
    yields ``auth(service, user, password) -> bool`` (``doveadm auth test``)."""
    started = []

    def start(ctx):
        tmp_path = open_folder()
        bundle = render(ctx)
        stage = tmp_path / "stage"
        bundle.write_to(stage)
        for path in stage.rglob("*"):  # the auth process reads them as dovecot, not root
            path.chmod(0o755 if path.is_dir() else 0o644)
        conf = bundle.file(dovecot.CONFIG).text
        passdbs = re.findall(r"^passdb \{\n.*?\n\}$", conf, re.MULTILINE | re.DOTALL)
        run = tmp_path / "run"
        run.mkdir()
        config = tmp_path / "dovecot.conf"
        config.write_text(
            "\n".join(
                [
                    "protocols =",
                    f"base_dir = {run}",
                    f"state_dir = {run}",
                    f"log_path = {tmp_path}/log",
                    "auth_mechanisms = plain login",
                    "auth_failure_delay = 0",  # a refused login answers at once (default: 2 s)
                    f"auth_username_chars = {dovecot.USERNAME_CHARS}",
                    "auth_username_format = %Lu",
                    *(block.replace("/etc/dovecot/", f"{stage}/etc/dovecot/") for block in passdbs),
                    "userdb {",
                    "  driver = static",
                    "  args = uid=nobody gid=nogroup home=/nonexistent",
                    "}",
                ]
            )
            + "\n"
        )
        subprocess.run(["dovecot", "-c", str(config)], check=True)
        started.append(run / "master.pid")

        def auth(service: str, user: str, password: str) -> bool:
            result = subprocess.run(
                # no-penalty: else a refused login delays the next ones (Dovecot's auth
                # penalty, up to 15 s), which this check of many logins does not test
                ["doveadm", "-c", str(config), "auth", "test", "-x", f"service={service}",
                 "-x", "no-penalty", user, password],
                capture_output=True,
                text=True,
            )  # fmt: skip
            return result.returncode == 0

        return auth

    yield start
    for pid_file in started:
        subprocess.run(["kill", pid_file.read_text().strip()], check=False)


def test_dovecot_takes_device_passwords_and_refuses_turned_off_protocols(running_dovecot):
    main_hash = subprocess.run(
        ["doveadm", "pw", "-s", "BLF-CRYPT", "-p", MAIN_PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    second = "fedcba9876543210fedcba9876543210"
    boxes = (
        carol(
            password_hash=main_hash,
            app_passwords=(
                DevicePassword(1, hash_device_password(DEVICE_PASSWORD)),
                DevicePassword(2, hash_device_password(second)),
            ),
        ),
        dataclasses.replace(directory().mailboxes[1], password_hash=main_hash, imap_enabled=False),
        dataclasses.replace(directory().mailboxes[0], password_hash=main_hash, smtp_enabled=False),
    )
    auth = running_dovecot(world_with(*boxes))
    for service in ("imap", "smtp"):
        for password in (MAIN_PASSWORD, DEVICE_PASSWORD, second):
            assert auth(service, "carol@family.example", password), (service, password)
        assert not auth(service, "carol@family.example", "0" * 32)
    assert not auth("imap", "alice@family.example", MAIN_PASSWORD)
    assert auth("smtp", "alice@family.example", MAIN_PASSWORD)
    assert auth("imap", "john@example.com", MAIN_PASSWORD)
    assert not auth("smtp", "john@example.com", MAIN_PASSWORD)


def test_a_revoked_device_password_is_gone_from_the_next_render(running_dovecot, family):
    from gateway.models import AppPassword

    carol_box = family.mailboxes.get(local_part="carol")
    row, password = AppPassword.issue(mailbox=carol_box, name="Phone")
    _, kept = AppPassword.issue(mailbox=carol_box, name="Laptop")
    row.delete()
    ctx = dataclasses.replace(context(hosts(), "home"), directory=mail_directory())
    assert list(dovecot.device_slots(ctx)) == [1]
    auth = running_dovecot(ctx)
    assert auth("imap", "carol@family.example", kept)
    assert not auth("imap", "carol@family.example", password)


def test_an_imap_login_with_a_device_password_records_its_row_and_time(open_folder):
    """A real Dovecot with the rendered passdbs and the rendered last_login settings: an IMAP
    login with a device password writes the time under that password's row, which
    hosts/usage.py reads back; a login with the main password names no device."""
    folder = open_folder()
    ctx = world_with(
        carol(
            password_hash=_hash(MAIN_PASSWORD),
            app_passwords=(DevicePassword(41, hash_device_password("1" * 32)),
                           DevicePassword(42, hash_device_password(DEVICE_PASSWORD))),
        )
    )  # fmt: skip
    bundle = render(ctx)
    stage = folder / "stage"
    bundle.write_to(stage)
    for path in stage.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    conf = bundle.file(dovecot.CONFIG).text
    passdbs = re.findall(r"^passdb \{\n.*?\n\}$", conf, re.MULTILINE | re.DOTALL)
    settings = re.findall(r"^  last_login_.*$", conf, re.MULTILINE)
    assert "protocol imap {\n  mail_plugins = $mail_plugins last_login\n}" in conf
    dictionary = folder / "last-login"
    port = free_port()
    config = folder / "dovecot.conf"
    config.write_text(
        "\n".join(
            [
                "protocols = imap",
                f"base_dir = {folder}/run",
                f"state_dir = {folder}/run",
                f"log_path = {folder}/log",
                "listen = 127.0.0.1",
                "ssl = no",
                "disable_plaintext_auth = no",
                "auth_mechanisms = plain login",
                f"auth_username_chars = {dovecot.USERNAME_CHARS}",
                "auth_username_format = %Lu",
                *(block.replace("/etc/dovecot/", f"{stage}/etc/dovecot/") for block in passdbs),
                "userdb {",
                "  driver = static",
                f"  args = uid=nobody gid=nogroup home={folder}/home/%u",
                "}",
                "mail_location = maildir:~/Maildir",
                "service imap-login {",
                "  inet_listener imap {",
                f"    port = {port}",
                "  }",
                "}",
                "protocol imap {",
                "  mail_plugins = $mail_plugins last_login",
                "}",
                "plugin {",
                *(line.replace(dovecot.LAST_LOGIN, str(dictionary)) for line in settings),
                "}",
            ]
        )
        + "\n"
    )
    subprocess.run(["dovecot", "-c", str(config)], check=True)
    try:
        before = int(time.time())
        for password in (DEVICE_PASSWORD, MAIN_PASSWORD):
            with imaplib.IMAP4("127.0.0.1", port, timeout=10) as client:
                client.login("carol@family.example", password)
                client.select("INBOX")
                client.logout()
        for _ in range(50):
            used = usage.parse_last_login(dictionary.read_text() if dictionary.exists() else "")
            if 42 in used:
                break
            time.sleep(0.1)
    finally:
        subprocess.run(["doveadm", "-c", str(config), "stop"], check=False)
    assert set(used) == {42}, dictionary.read_text()
    assert before <= used[42].timestamp() <= time.time()


def _hash(password: str) -> str:
    command = ["doveadm", "pw", "-s", "BLF-CRYPT", "-p", password]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_the_directory_carries_every_setting(family):
    box = family.mailboxes.get(local_part="carol")
    box.forward_to = ["x@example.org"]
    box.autoreply_enabled, box.autoreply_subject, box.autoreply_body = True, "Away", "Text"
    box.imap_enabled = False
    box.save()
    entry = next(e for e in mail_directory().mailboxes if e.address == "carol@family.example")
    assert entry.forward_to == ("x@example.org",)
    assert (entry.autoreply_subject, entry.imap_enabled, entry.smtp_enabled) == (
        "Away",
        False,
        True,
    )
    assert entry.password_hash.startswith("{BLF-CRYPT}")


# --- SRS --------------------------------------------------------------------------------------


def test_srs_is_rendered_where_mail_is_forwarded_out():
    ctx = world_with()  # the alias uncle@family.example goes to elsewhere.example
    bundle = render(ctx)
    main_cf = bundle.file("/etc/postfix/main.cf").text
    assert "sender_canonical_maps = tcp:127.0.0.1:10001" in main_cf
    assert "recipient_canonical_maps = tcp:127.0.0.1:10002" in main_cf
    defaults = bundle.file(postsrsd.DEFAULTS).text
    assert "SRS_DOMAIN=example.com" in defaults
    assert "SRS_EXCLUDE_DOMAINS=family.example" in defaults
    names = [unit.name for unit in bundle.units]
    assert names.index("postsrsd") < names.index("postfix")


def test_srs_is_left_out_without_forwards_to_other_domains():
    local = tuple(alias for alias in directory().aliases if alias.local_part != "uncle")
    ctx = with_directory(context(hosts(), "home"), aliases=local)
    assert not postsrsd.needed(ctx)
    assert "postsrsd" not in [unit.name for unit in render(ctx).units]
    forwarding = with_directory(ctx, mailboxes=(carol(forward_to=("x@example.org",)),))
    assert postsrsd.needed(forwarding)
