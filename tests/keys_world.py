"""Real GnuPG for the keys tests: Mailgate's keyring in a fresh home per test, and a separate
keyring standing in for the outside world (people who make their own keys, a CA that certifies
them). No test here: the other test_keys_* files import the fixtures (``world``, ``keyring``)."""

import itertools
import shutil
import subprocess
import tempfile

import pytest

from keys.gpg import Keyring


class World:
    """Keys made elsewhere, with gpg itself (not Mailgate's wrapper)."""

    def __init__(self, home: str):
        self.home = home

    def gpg(self, *args: str, input: bytes = b"") -> bytes:
        command = ["gpg", "--homedir", self.home, "--batch", "--no-tty", *args]
        done = subprocess.run(command, input=input, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def make_key(self, user_id: str, *more: str, usage: str = "default", expire="2y") -> str:
        before = self.fingerprints()
        self.gpg(
            "--yes", "--passphrase", "", "--quick-gen-key", user_id, "future-default", usage, expire
        )
        [fingerprint] = [fpr for fpr in self.fingerprints() if fpr not in before]
        for other in more:
            self.gpg("--passphrase", "", "--quick-add-uid", fingerprint, other)
        return fingerprint

    def fingerprints(self) -> list[str]:
        """Primary keys' fingerprints (each pub record's first fpr)."""
        listing = self.gpg("--with-colons", "--list-keys").decode().splitlines()
        return [
            following.split(":")[9]
            for line, following in itertools.pairwise(listing)
            if line.startswith("pub:")
        ]

    def export(self, fingerprint: str, *, armor: bool = False) -> bytes:
        return self.gpg(*(["--armor"] if armor else []), "--export", fingerprint)

    def export_secret(self, fingerprint: str) -> bytes:
        return self.gpg("--armor", "--export-secret-keys", fingerprint)

    def certify(self, certifier: str, fingerprint: str, *, expire="6m", at=None) -> None:
        """A CA's certification as ProtonCA makes them: exportable, for six months; ``at`` makes
        a renewal at that (faked) time, beside the certification that already exists."""
        renewal = (
            ("--faked-system-time", f"{int(at.timestamp())}!", "--force-sign-key") if at else ()
        )
        self.gpg(
            *renewal,
            "--default-cert-expire",
            expire,
            "--local-user",
            certifier,
            "--quick-sign-key",
            fingerprint,
        )


def show_keys(data: bytes) -> str:
    """gpg's own listing of key data (``--show-keys`` imports nothing)."""
    with tempfile.TemporaryDirectory(prefix="mg-show-") as home:
        done = subprocess.run(
            ["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys"],
            input=data,
            capture_output=True,
            check=True,
        )
    return done.stdout.decode()


def user_ids_of(data: bytes) -> list[str]:
    return [line.split(":")[9] for line in show_keys(data).splitlines() if line.startswith("uid")]


@pytest.fixture(name="world")
def world_fixture():
    home = tempfile.mkdtemp(prefix="mg-world-")
    try:
        yield World(home)
    finally:
        Keyring(home).stop_agent()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(name="keyring")
def keyring_fixture(settings):
    """Mailgate's own keyring, in a fresh home (short path: gpg-agent's socket is in it)."""
    home = tempfile.mkdtemp(prefix="mg-home-")
    settings.MAILGATE_GNUPGHOME = home
    try:
        yield Keyring(home)
    finally:
        Keyring(home).stop_agent()
        shutil.rmtree(home, ignore_errors=True)
