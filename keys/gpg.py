"""GnuPG for Mailgate: the keyring it owns (``MAILGATE_GNUPGHOME``) and throwaway ones.

python-gnupg drives gpg where it has the call (importing keys, setting ownertrust), always with
``encoding='utf-8'``: its default, latin-1, garbles UTF-8 user IDs. Where it has none (local
signatures, export filters, ``--quick-gen-key``) gpg runs through subprocess with the same home.
Listings are parsed by ``keys.colons``, because python-gnupg's ``list_keys(sigs=True)`` gives
neither the date nor the expiry of a certification.

Every call holds an exclusive ``flock`` on a file in the home: two Celery workers (or a worker
and the web process) would otherwise write ``pubring.kbx`` and ``trustdb.gpg`` at the same time.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import gnupg
from django.conf import settings

from keys.colons import KeyInfo, ascii_lower, parse_listing

GPG = "gpg"
LOCK_FILE = ".mailgate.lock"
TIMEOUT = 120  # seconds; key generation is the slowest call
CERTIFIER_USER_ID = "Mailgate certification key"


class GpgError(Exception):
    """gpg refused or failed; the message is gpg's own last words."""


class Keyring:
    """A GnuPG home; every method runs under the home's exclusive lock."""

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self._depth = 0  # the lock is reentrant within one Keyring object
        self._python_gnupg = None

    @classmethod
    def default(cls) -> "Keyring":
        return cls(settings.MAILGATE_GNUPGHOME)

    @classmethod
    @contextmanager
    def temporary(cls) -> Iterator["Keyring"]:
        """A throwaway keyring: uploads are parsed and keys generated here, so nothing a user
        sends ever lands in the keyring that holds the trust decisions."""
        # Short path under /tmp: gpg-agent's socket path must fit in 108 bytes.
        home = tempfile.mkdtemp(prefix="mg-gpg-")
        keyring = cls(home)
        try:
            yield keyring
        finally:
            keyring.stop_agent()
            shutil.rmtree(home, ignore_errors=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._ensure_home()
        with open(self.home / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0  # closing the file releases the lock

    def _ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)  # gpg warns about (and agents refuse) group-readable homes
        agent_conf = self.home / "gpg-agent.conf"
        if settings.MAILGATE_GPG_S2K_COUNT and not agent_conf.exists():
            agent_conf.write_text(f"s2k-count {settings.MAILGATE_GPG_S2K_COUNT}\n")

    @property
    def python_gnupg(self) -> gnupg.GPG:
        if self._python_gnupg is None:
            self._ensure_home()
            self._python_gnupg = gnupg.GPG(
                gpgbinary=GPG, gnupghome=str(self.home), encoding="utf-8"
            )
        return self._python_gnupg

    def run(
        self, *args: str, input: bytes = b"", now: datetime | None = None, partial: bool = False
    ) -> bytes:
        """Run gpg in this home; ``now`` fakes the clock (``--faked-system-time``) without
        letting gpg update the trust database for that imagined time. With ``partial``, a
        failure (a listed key that is missing) still returns what gpg printed."""
        clock = (
            ("--faked-system-time", f"{int(now.timestamp())}!", "--no-auto-check-trustdb")
            if now
            else ()
        )
        command = [
            GPG,
            "--homedir",
            str(self.home),
            "--batch",
            "--no-tty",
            "--with-colons",
            *clock,
            *args,
        ]
        with self.locked():
            done = subprocess.run(  # noqa: S603 (no shell; arguments are ours or validated)
                command, input=input, capture_output=True, timeout=TIMEOUT, check=False
            )
        if done.returncode != 0 and not partial:
            raise GpgError(_last_words(done.stderr))
        return done.stdout

    def stop_agent(self) -> None:
        subprocess.run(  # noqa: S603
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],  # noqa: S607
            capture_output=True,
            timeout=30,
            check=False,
        )

    # --- reading ---------------------------------------------------------------------------------

    def list_keys(self, *fingerprints: str, secret: bool = False) -> list[KeyInfo]:
        listing = "--list-secret-keys" if secret else "--list-keys"
        # gpg fails when a named key is missing, after listing the others.
        output = self.run(
            "--fixed-list-mode", listing, "--", *fingerprints, partial=bool(fingerprints)
        )
        return parse_listing(output.decode("utf-8", "replace"))

    def key(self, fingerprint: str) -> KeyInfo | None:
        return next(iter(self.list_keys(fingerprint)), None)

    def check_signatures(self, *fingerprints: str, now: datetime | None = None) -> list[KeyInfo]:
        """Keys with their user IDs' signatures, each checked (``--check-sigs``)."""
        output = self.run("--fixed-list-mode", "--check-sigs", "--", *fingerprints, now=now)
        return parse_listing(output.decode("utf-8", "replace"))

    def show(self, data: bytes) -> list[KeyInfo]:
        """The keys in ``data``, listed without importing them."""
        output = self.run("--fixed-list-mode", "--show-keys", input=data)
        return parse_listing(output.decode("utf-8", "replace"))

    def export(
        self, fingerprint: str, *, address: str = "", minimal: bool = False, armor: bool = False
    ) -> bytes:
        """The public key; with ``address``, only the user IDs whose mailbox is that address."""
        options = ["--export-options", "export-minimal"] if minimal else []
        if address:
            options += ["--export-filter", f"keep-uid=mbox = {ascii_lower(address)}"]
        if minimal:
            # Autocrypt's minimal key: no signing-only subkeys either.
            options += ["--export-filter", "drop-subkey=usage !~ e"]
        return self.run(*options, *(["--armor"] if armor else []), "--export", "--", fingerprint)

    # --- writing ---------------------------------------------------------------------------------

    def import_keys(self, data: bytes) -> list[str]:
        """Import keys (armored or binary); returns the fingerprints gpg reports."""
        with self.locked():
            result = self.python_gnupg.import_keys(data)
        if not result.count:
            raise GpgError("This is not an OpenPGP key (gpg found no key in it).")
        return sorted({fpr for fpr in result.fingerprints if fpr})

    def delete(self, fingerprint: str) -> None:
        self.run("--yes", "--delete-keys", "--", fingerprint)

    def set_ownertrust(self, fingerprint: str, level: str) -> None:
        """``level`` is python-gnupg's string, e.g. ``'TRUST_FULLY'``."""
        with self.locked():
            try:
                self.python_gnupg.trust_keys([fingerprint], level)
            except ValueError as exc:  # python-gnupg's word for gpg's refusal
                raise GpgError(str(exc)) from None

    def ownertrust(self) -> dict[str, int]:
        output = self.run("--export-ownertrust").decode()
        pairs = (line.split(":")[:2] for line in output.splitlines() if ":" in line)
        return {fpr: int(level) for fpr, level in pairs if not fpr.startswith("#")}

    def local_sign(self, fingerprint: str, *, certifier: str) -> None:
        """A non-exportable certification: python-gnupg has no lsign."""
        self.run("--yes", "--local-user", certifier, "--quick-lsign-key", "--", fingerprint)

    def certifier(self) -> str:
        """Mailgate's own certification key, made on first use. gpg gives a key it generates
        ultimate ownertrust, which is what makes its local signatures count. It has no
        passphrase: it only makes local (non-exportable) signatures, valid in this keyring
        alone, so whoever could read it could as well rewrite the keyring itself."""
        with self.locked():
            for key in self.list_keys(secret=True):
                if any(uid.text == CERTIFIER_USER_ID for uid in key.user_ids):
                    return key.fingerprint
            self.run(
                "--passphrase",
                "",
                "--quick-gen-key",
                CERTIFIER_USER_ID,
                "ed25519",
                "cert",
                "never",
            )
            return self.certifier()

    def generate(self, address: str, *, passphrase: str = "", expire: str = "2y") -> str:
        """A new key for ``address`` (Curve25519); returns its fingerprint."""
        self.run(
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--quick-gen-key",
            "--",  # a local part may begin with "-"
            address,
            "future-default",
            "default",
            expire,
            input=passphrase.encode(),
        )
        return self.list_keys(address)[0].fingerprint

    def export_secret(self, fingerprint: str, *, passphrase: str = "") -> str:
        output = self.run(
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--armor",
            "--export-secret-keys",
            "--",
            fingerprint,
            input=passphrase.encode(),
        )
        return output.decode()

    def revocation_certificate(self, fingerprint: str) -> str:
        """gpg writes one for every key it generates."""
        return (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()


def _last_words(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].removeprefix("gpg: ") if lines else "gpg failed without a message."
