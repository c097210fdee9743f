"""The proof that the mail server signs: a real Postfix hands mail submitted over SMTP and
through ``sendmail`` to a real OpenDKIM running the files Mailgate rendered for the home host,
and each delivered message verifies (dkimpy) against the DKIM record Mailgate publishes, before
and after a rotation (publish, switch, retire).

Both run on loopback ports of their own with private folders; the rendered files are used as
they are, apart from the folder they sit in (their paths are rewritten to the test's staging
tree) and the ports. Everything started is stopped by pid."""

import contextlib
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dkim
import pytest

from hosts.render import postfix, render_host
from tests.servers import free_port, stop
from tests.world import build_infrastructure
from zones import opendkim, services
from zones.records import expected_records
from zones.selectors import dns_facts

MESSAGE = (
    "From: Alice <alice@family.example>\r\n"
    "To: Bob <bob@elsewhere.example>\r\n"
    "Subject: {subject}\r\n"
    "Message-ID: <{subject}@family.example>\r\n"
    "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
    "\r\n"
    "Signed by the mail server.\r\n"
)
MILTER_LINES = ("smtpd_milters", "non_smtpd_milters", "milter_default_action", "milter_protocol")


@pytest.fixture
def home(family):
    return build_infrastructure()["home"]


@pytest.fixture
def scratch():
    """A folder the ``opendkim`` and ``nobody`` users can enter (pytest's tmp_path is 0700),
    below no world-writable folder such as /tmp: OpenDKIM refuses a key on such a path."""
    folder = Path(tempfile.mkdtemp(prefix="mailgate-dkim-", dir="/run"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def rendered_milter_settings(home) -> dict[str, str]:
    main_cf = render_host(home).file(postfix.MAIN_CF).text
    settings = dict(line.split(" = ", 1) for line in main_cf.splitlines() if " = " in line)
    return {name: settings[name] for name in MILTER_LINES}


@contextlib.contextmanager
def opendkim_serving(home, stage: Path, port: int):
    """OpenDKIM with the home host's rendered files, staged under ``stage``."""
    shutil.rmtree(stage, ignore_errors=True)
    bundle = render_host(home)
    unit = bundle.unit("opendkim")
    live = opendkim.TABLES_DIR
    for file in unit.files:
        target = stage / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content.replace(live.encode(), f"{stage}{live}".encode()))
        target.chmod(file.mode)
        shutil.chown(target, *file.owner.split(":"))
    for folder in (stage, *[p for p in stage.rglob("*") if p.is_dir()]):
        folder.chmod(0o755)
    process = subprocess.Popen(
        [
            "opendkim",
            "-f",
            "-x",
            str(stage / opendkim.CONFIG.lstrip("/")),
            "-p",
            f"inet:{port}@127.0.0.1",
            "-P",
            str(stage / "opendkim.pid"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(port, process)
        yield unit
    finally:
        stop(process)
        print(process.stdout.read())


@contextlib.contextmanager
def postfix_serving(folder: Path, milter_settings: dict[str, str], milter_port: int):
    """A private Postfix: an smtpd on a loopback port that, like the rendered submission
    services, names itself ORIGINATING to the milter, and every message delivered into
    ``folder/mail`` by a pipe."""
    config, mail = folder / "postfix", folder / "mail"
    for path in (config, mail, folder / "queue", folder / "data"):
        path.mkdir()
    shutil.chown(folder / "data", "postfix")
    mail.chmod(0o777)
    smtp_port = free_port()
    milters = {
        name: value.replace(opendkim.MILTER, f"inet:127.0.0.1:{milter_port}")
        for name, value in milter_settings.items()
    }
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": folder / "queue",
        "data_directory": folder / "data",
        "maillog_file": "/dev/stdout",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "mail.family.example",
        "mydestination": "",
        "mynetworks": "127.0.0.0/8",
        "default_transport": "capture",
        **milters,
    }
    (config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (config / "master.cf").write_text(
        f"127.0.0.1:{smtp_port} inet n - n - - smtpd -o milter_macro_daemon_name=ORIGINATING\n"
        + "".join(
            f"{line}\n"
            for line in (
                "pickup unix n - n 60 1 pickup",
                "cleanup unix n - n - 0 cleanup",
                "qmgr unix n - n 300 1 qmgr",
                "rewrite unix - - n - - trivial-rewrite",
                "bounce unix - - n - 0 bounce",
                "defer unix - - n - 0 bounce",
                "trace unix - - n - 0 bounce",
                "error unix - - n - - error",
                "retry unix - - n - - error",
                "proxymap unix - - n - - proxymap",
                "anvil unix - - n - 1 anvil",
                "postlog unix-dgram n - n - 1 postlogd",
                f"capture unix - n n - - pipe user=nobody argv=/usr/bin/tee "
                f"{mail}/${{queue_id}}.eml",
            )
        )
    )
    subprocess.run(["postfix", "-c", config, "check"], check=True, capture_output=True)
    subprocess.run(["postfix", "-c", config, "set-permissions"], check=True, capture_output=True)
    process = subprocess.Popen(
        ["postfix", "-c", config, "start-fg"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_port(smtp_port, process)
        yield smtp_port, config, mail
    finally:
        subprocess.run(["postfix", "-c", config, "stop"], capture_output=True, check=False)
        stop(process)
        print(process.stdout.read())


def submit_over_smtp(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(
            "alice@family.example",
            ["bob@elsewhere.example"],
            MESSAGE.format(subject=subject).encode(),
        )


def submit_with_sendmail(config: Path, subject: str) -> None:
    subprocess.run(
        ["sendmail", "-C", config, "-f", "alice@family.example", "-t"],
        input=MESSAGE.format(subject=subject).replace("\r\n", "\n").encode(),
        check=True,
        timeout=30,
    )


def delivered(mail: Path, subject: str) -> bytes:
    """The message as delivered (CRLF line ends, as on the wire), once it arrives."""
    for _ in range(300):
        for path in mail.glob("*.eml"):
            content = path.read_bytes()
            if f"Subject: {subject}\n".encode() in content:
                return content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        time.sleep(0.1)
    raise AssertionError(f"{subject!r} was not delivered")


def published_dns(name: bytes, timeout=5) -> bytes | None:
    """dkimpy's DNS lookup, answered from the records Mailgate publishes (expected records)."""
    wanted = name.decode().rstrip(".")
    for record in expected_records(dns_facts(), "family.example"):
        if record.name == wanted and record.rtype == "TXT" and record.values:
            return record.values[0].encode()
    return None


def selector_of(message: bytes) -> str:
    return re.search(rb"DKIM-Signature:.*?\bs=([\w-]+);", message, re.S).group(1).decode()


def signed_by(mail: Path, subject: str) -> str:
    message = delivered(mail, subject)
    assert dkim.verify(message, dnsfunc=published_dns), message.decode()
    return selector_of(message)


def test_the_mail_server_signs_with_the_current_key_through_a_rotation(home, family, scratch):
    old = services.dkim_key_generate(domain=family)
    milter_settings = rendered_milter_settings(home)
    assert milter_settings == {
        "smtpd_milters": "inet:127.0.0.1:8891",
        "non_smtpd_milters": "$smtpd_milters",
        "milter_default_action": "accept",
        "milter_protocol": "6",
    }
    milter_port, stage = free_port(), scratch / "stage"
    with postfix_serving(scratch, milter_settings, milter_port) as (smtp_port, config, mail):
        with opendkim_serving(home, stage, milter_port):
            submit_over_smtp(smtp_port, "first")
            submit_with_sendmail(config, "local")
            assert signed_by(mail, "first") == signed_by(mail, "local") == "dkim"

        # 1. a new key is published: it does not sign yet, and is not even on the host
        new = services.dkim_key_generate(domain=family, selector="dkim2")
        with opendkim_serving(home, stage, milter_port) as unit:
            assert not any("dkim2" in file.path for file in unit.files)
            submit_over_smtp(smtp_port, "published")
            assert signed_by(mail, "published") == "dkim"

        # 2. switch: the new key signs
        services.dkim_key_activate(key=new)
        with opendkim_serving(home, stage, milter_port) as unit:
            assert not any(".dkim." in file.path for file in unit.files)
            submit_over_smtp(smtp_port, "switched")
            assert signed_by(mail, "switched") == "dkim2"

        # 3. retire the old key: its record is withdrawn, the new key goes on signing
        services.dkim_key_retire(key=old)
        assert published_dns(b"dkim._domainkey.family.example.") is None
        with opendkim_serving(home, stage, milter_port):
            submit_over_smtp(smtp_port, "retired")
            submit_with_sendmail(config, "local-retired")
            assert signed_by(mail, "retired") == signed_by(mail, "local-retired") == "dkim2"
        # mail signed before the switch no longer verifies once its record is gone
        assert not dkim.verify(delivered(mail, "first"), dnsfunc=published_dns)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} stopped: {process.stdout.read()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")
