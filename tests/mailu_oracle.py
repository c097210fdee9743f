"""Mailu 2024.06.57 itself as a test oracle, set up in this one place (docs/facts.md §3).

Mailu's source lives beside the project (``shared_path("oracles", "mailu")``); ``bin/bootstrap
--test`` installs its admin's requirements and socrate into ``.venv-mailu``, where
``tests/mailu_oracle_runner.py`` runs Mailu's own code. Nothing of Mailu is copied here.

- ``mailu_admin``: a Mailu admin of the test's own, on SQLite: the session migrates one database
  with ``flask db upgrade`` and each test works on a copy of it, through Mailu's ``flask mailu
  config-import`` (``-n`` for the dry run) and ``config-export --full --secrets``. The admin's
  rate limiter uses Redis database 13 on 127.0.0.1:6379 (``RATELIMIT_STORAGE_URL``; sessions stay
  in memory, ``MEMORY_SESSIONS``), so no other test's Redis data is touched.
- ``render_mailu``: one container's configuration (Postfix, Dovecot, front nginx, rspamd), made
  from a ``mailu.env`` by Mailu's templates and socrate as the container's ``start.py`` does.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared import ROOT, shared_path, unavailable

VENV = ROOT / ".venv-mailu"
RUNNER = Path(__file__).with_name("mailu_oracle_runner.py")
REDIS_DB = 13
# The containers' names, as Mailu's templates use them; on this machine they all are loopback,
# as Mailu's own core/admin/run_dev.sh sets them for an admin outside Docker.
ADDRESSES = {
    f"{name}_ADDRESS": "127.0.0.1"
    for name in ("ADMIN", "FRONT", "SMTP", "IMAP", "REDIS", "ANTISPAM", "ANTIVIRUS", "WEBMAIL")
}


def oracle_core() -> Path:
    """Mailu's ``src/core`` beside the project (skips, or fails under CI, when missing)."""
    return shared_path("oracles", "mailu", "src", "core")


def oracle_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        unavailable(f"{python} is missing: run bin/bootstrap --test to install Mailu's oracle")
    return python


@dataclass(frozen=True)
class Outcome:
    """A Mailu command's exit code and everything it printed."""

    code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class AdminProcess:
    """The runner's ``serve`` loop: Mailu's ``flask`` command, imported once for the session."""

    def __init__(self, admin: Path):
        self.admin = admin
        self.log = admin.parent / "admin.log"
        self.process = subprocess.Popen(
            [str(oracle_python()), str(RUNNER), "serve"],
            cwd=admin,
            env=admin_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )

    def run(self, args: list[str], env: dict[str, str]) -> Outcome:
        self.process.stdin.write(json.dumps({"args": args, "env": env}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            code = self.process.wait()
            raise RuntimeError(f"Mailu's admin ended ({code}): {self.log.read_text()[-2000:]}")
        return Outcome(**json.loads(answer))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def admin_environment() -> dict[str, str]:
    """What the admin needs outside its container, whatever the database."""
    return {
        "PATH": os.environ["PATH"],
        "FLASK_APP": "mailu",
        "PYTHONDONTWRITEBYTECODE": "1",
        "REDIS_ADDRESS": "127.0.0.1:6379",
        "RATELIMIT_STORAGE_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "MEMORY_SESSIONS": "true",
        "DISABLE_STATISTICS": "True",
    }


class MailuAdmin:
    """One Mailu admin: its own database and DKIM folder under ``folder``, and the settings of a
    ``mailu.env`` (the admin container reads it too)."""

    def __init__(self, process: AdminProcess, folder: Path, settings: dict[str, str]):
        self.process = process
        self.folder = folder
        self.dkim = folder / "dkim"
        self.dkim.mkdir()
        self.env = {
            **settings,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'main.db'}",
            "INSTANCE_ID_PATH": str(folder / "instance"),
            "DKIM_PATH": f"{self.dkim}/{{domain}}.{{selector}}.key",
            **{key: value for key, value in admin_environment().items() if key != "PATH"},
        }

    def flask(self, *args: str) -> Outcome:
        return self.process.run(list(args), self.env)

    def dry_run(self, document: bytes) -> Outcome:
        return self.flask("mailu", "config-import", "-n", str(self._source(document)))

    def apply(self, document: bytes) -> Outcome:
        """Mailu's full replace: ``config-import`` without ``-u``, as Mailgate activates it."""
        return self.flask("mailu", "config-import", str(self._source(document)))

    def export(self) -> dict:
        """Every field Mailu holds, secrets (password hashes) included."""
        path = self.folder / "export.json"
        outcome = self.flask("mailu", "config-export", "--full", "--secrets", "-j", "-o", str(path))
        assert outcome.ok, outcome.output
        return json.loads(path.read_text())

    def accepted_passwords(self, email: str, *passwords: str) -> list[bool]:
        """Whether Mailu's login check takes each of ``passwords`` for ``email``, as imported."""
        return self._ask(["verify", email, *passwords], len(passwords))

    def accepted_logins(self, email: str, protocol: str, *passwords: str) -> list[bool]:
        """Whether Mailu's front lets ``email`` in over ``protocol`` (imap, pop3, smtp) with
        each of ``passwords``: its password or an application token, and that protocol on."""
        return self._ask(["login", email, protocol, *passwords], len(passwords))

    def _ask(self, arguments: list[str], count: int) -> list[bool]:
        """The runner's last ``count`` answers (one line each) to ``arguments``."""
        where, env = self.command_line()
        result = subprocess.run(
            [str(oracle_python()), str(RUNNER), *arguments],
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [line == "True" for line in result.stdout.splitlines()[-count:]]

    def command_line(self) -> tuple[Path, dict[str, str]]:
        """Where and with what environment a real ``flask`` process runs this admin (for a
        stand-in ``docker compose exec admin``); the first is the folder, the ``flask`` is
        ``VENV/bin/flask``."""
        return self.process.admin, {**os.environ, **self.env}

    def _source(self, document: bytes) -> Path:
        path = self.folder / "config-import.yaml"
        path.write_bytes(document)
        return path


@pytest.fixture(name="mailu_admin_process", scope="session")
def mailu_admin_process_fixture(tmp_path_factory):
    """A scratch copy of Mailu's admin (Python writes caches beside the source, and the shared
    directory, ``MAILGATE_SHARED_DIR``, is read-only), its ``flask`` process, and a database
    migrated once for the session."""
    folder = tmp_path_factory.mktemp("mailu")
    shutil.copytree(oracle_core() / "admin", folder / "admin")
    process = AdminProcess(folder / "admin")
    template = MailuAdmin(process, folder, {"SECRET_KEY": "0123456789abcdef"})
    upgraded = template.flask("db", "upgrade")
    assert upgraded.ok, upgraded.output
    yield process, folder / "main.db"
    process.close()


@pytest.fixture(name="mailu_admin")
def mailu_admin_fixture(mailu_admin_process, tmp_path):
    """A factory: ``mailu_admin(settings)`` is a fresh Mailu admin with ``mailu.env``'s settings."""
    process, template = mailu_admin_process

    def make(settings: dict[str, str]) -> MailuAdmin:
        folder = tmp_path / f"mailu-{len(list(tmp_path.glob('mailu-*')))}"
        folder.mkdir()
        shutil.copyfile(template, folder / "main.db")
        return MailuAdmin(process, folder, settings)

    return make


def render_mailu(container: str, settings: dict[str, str], out: Path, **extra: str) -> Path:
    """``container``'s configuration (postfix, dovecot, nginx or rspamd) from ``mailu.env``'s
    ``settings``, as Mailu's templates make it, under ``out/<folder>`` (see the runner)."""
    command = [str(oracle_python()), str(RUNNER), "render", container, str(oracle_core())]
    result = subprocess.run(
        [*command, str(out), json.dumps(extra)],
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", **ADDRESSES, **settings},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out
