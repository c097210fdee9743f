"""Lab hosts on this machine: a network namespace joined to it by a veth pair, running its own
``sshd`` in a private mount namespace, so that Mailgate deploys to it over SSH exactly as to a
real server (``../shared/lab/README.md``). Needs root.

Directories listed as private (``/etc/postfix``, ``/etc/wireguard``, ...) are copies that only
the lab host sees: several lab hosts on one machine do not overwrite each other's files, nor the
machine's. Everything a lab host started is killed and removed by ``close()``.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LINK_NETWORK = "198.18.{block}.{host}"  # RFC 2544 benchmarking range: never routed outside
SSHD = "/usr/sbin/sshd"
NSENTER = "/usr/bin/nsenter"
NETNS_EXEC = ("/usr/sbin/ip", "netns", "exec")
PRIVATE_MOUNTS = ("/usr/bin/unshare", "--mount", "--propagation", "private")


class LabError(RuntimeError):
    """A lab host could not be built; the message carries the failing command's output."""


def sh(*command: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 (fixed programs, arguments built here)
        command, capture_output=True, text=True, input=input, check=False
    )
    if check and result.returncode:
        raise LabError(f"{' '.join(command)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def ed25519_key() -> tuple[str, str]:
    """A new key pair: (OpenSSH private key, 'ssh-ed25519 AAAA…' public key)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


@dataclass
class LabHost:
    """One lab host. ``address`` is where its sshd listens; this machine is ``gateway``."""

    name: str
    private_dirs: tuple[str, ...] = ()
    root: Path = field(init=False)
    address: str = field(init=False)
    gateway: str = field(init=False)
    client_key: str = field(init=False)  # what Mailgate logs in with
    host_key: str = field(init=False)  # what Mailgate must pin
    sshd: subprocess.Popen | None = field(init=False, default=None)
    anchor: subprocess.Popen | None = field(init=False, default=None)
    _made_dirs: list[str] = field(init=False, default_factory=list)

    @classmethod
    def create(cls, prefix: str = "mg", private_dirs: tuple[str, ...] = ()) -> "LabHost":
        host = cls(name=f"{prefix}-{secrets.token_hex(3)}", private_dirs=private_dirs)
        try:
            host._build()
        except BaseException:
            host.close()
            raise
        return host

    @property
    def veth(self) -> str:
        return f"v{self.name[-6:]}"

    def _build(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        block = int(self.name[-6:], 16) % 250
        self.gateway = LINK_NETWORK.format(block=block, host=1)
        self.address = LINK_NETWORK.format(block=block, host=2)
        sh("ip", "netns", "add", self.name)
        sh(
            "ip",
            "link",
            "add",
            self.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.name,
        )
        sh("ip", "addr", "add", f"{self.gateway}/30", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        for command in (
            ("ip", "addr", "add", f"{self.address}/30", "dev", "eth0"),
            ("ip", "link", "set", "eth0", "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            sh("ip", "netns", "exec", self.name, *command)
        for path in self.private_dirs:
            self._prepare_private(path)
        self.client_key, public = ed25519_key()
        (self.root / "authorized_keys").write_text(public + "\n")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / "host_key"))
        self.host_key = " ".join((self.root / "host_key.pub").read_text().split()[:2])
        self._start_anchor()
        self.start_sshd()

    def _prepare_private(self, path: str) -> None:
        copy = self.root / "private" / path.strip("/")
        if Path(path).is_dir():
            copy.parent.mkdir(parents=True, exist_ok=True)
            sh("cp", "-a", path, str(copy))  # owners too: Postfix checks its queue's
        else:
            copy.mkdir(parents=True)
            Path(path).mkdir(parents=True)
            self._made_dirs.append(path)

    def _sshd_config(self) -> Path:
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}",
                    f"HostKey {self.root / 'host_key'}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        return config

    def _start_anchor(self) -> None:
        """A process that holds the host's private mount namespace for its whole life, so its
        files outlive sshd (as a real host's disk outlives a dropped connection)."""
        mounts = "".join(
            f"mount --bind {self.root / 'private' / path.strip('/')} {path} && "
            for path in self.private_dirs
        )
        self.anchor = subprocess.Popen(  # noqa: S603
            [*NETNS_EXEC, self.name, *PRIVATE_MOUNTS, "sh", "-c", f"{mounts}exec sleep infinity"],
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while _command(self.anchor.pid) != "sleep infinity":
            if self.anchor.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the private mounts of {self.name} failed")
            time.sleep(0.01)

    def start_sshd(self) -> None:
        """Start sshd in the host's network namespace and private mount namespace."""
        Path("/run/sshd").mkdir(exist_ok=True)
        config, log = self._sshd_config(), self.root / "sshd.log"
        self.sshd = subprocess.Popen(  # noqa: S603
            [*self._enter(), SSHD, "-D", "-f", str(config), "-E", str(log)],
            start_new_session=True,
        )
        self._wait_for_sshd()

    def _enter(self) -> list[str]:
        return [NSENTER, "--target", str(self.anchor.pid), "--mount", "--net"]

    def _wait_for_sshd(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                log = (
                    (self.root / "sshd.log").read_text()
                    if (self.root / "sshd.log").exists()
                    else ""
                )
                raise LabError(f"sshd of {self.name} exited: {log}")
            try:
                socket.create_connection((self.address, 22), timeout=0.5).close()
                return
            except OSError:
                pass
            time.sleep(0.05)
        raise LabError(f"sshd of {self.name} did not start listening")

    def stop_sshd(self) -> None:
        """Kill sshd and every session it serves (a dropped link, as the remote sees it);
        processes that left the session (``setsid``) keep running, as on a real host."""
        if self.sshd and self.sshd.poll() is None:
            for pid in self._pids():
                if _command(pid).startswith(("sshd", SSHD)):
                    _kill(pid)
            self.sshd.wait(timeout=10)

    def run(self, command: str) -> subprocess.CompletedProcess:
        """Run a shell command as the lab host sees the world (its network and its files)."""
        return subprocess.run(  # noqa: S603
            [*self._enter(), "sh", "-c", command],
            capture_output=True,
            text=True,
            check=False,
        )

    def read(self, path: str) -> bytes | None:
        result = subprocess.run(  # noqa: S603
            [*self._enter(), "cat", path],
            capture_output=True,
            check=False,
        )
        return result.stdout if result.returncode == 0 else None

    def _pids(self) -> list[int]:
        output = sh("ip", "netns", "pids", self.name, check=False)
        return [int(pid) for pid in output.split()]

    def close(self) -> None:
        for pid in self._pids():
            _kill(pid)
        for process in (self.sshd, self.anchor):
            if process:
                process.wait(timeout=10)
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "link", "del", self.veth, check=False)
        for path in self._made_dirs:
            shutil.rmtree(path, ignore_errors=True)
        if getattr(self, "root", None):
            shutil.rmtree(self.root, ignore_errors=True)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
