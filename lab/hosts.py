"""Lab hosts on this machine: a network namespace joined to it by a veth pair, running its own
``sshd`` in a private mount namespace, so that Mailgate deploys to it over SSH exactly as to a
real server (the recipe in ``README.md``, "The gateway lab"). Needs root.

Directories listed as private (``/etc/postfix``, ``/etc/wireguard``, ...) are copies that only
the lab host sees: several lab hosts on one machine do not overwrite each other's files, nor the
machine's. A host may get its own resolver (``/etc/netns/NAME/resolv.conf``, which ``ip netns
exec`` mounts) and its own syslog socket at ``/dev/log``, as a real server has, so that Postfix
and Dovecot log. Everything a lab host started is killed and removed by ``close()``, also from
another process that only has its ``state()``.

The gateway lab (``world.py``) builds several such hosts into the reference setup
(docs/reference-setups.md).
"""

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
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
DEV_LOG = Path("/dev/log")
# The mount points lab hosts made on the machine, and which hosts use each: removed when the
# last of them closes. Linux detaches every mount on a path whose directory is removed, in every
# namespace, so a host that removed "its" mount point would take another lab's mounts with it.
MOUNT_POINTS = Path("/run/mailgate-lab-mount-points.json")
# This machine's root shell start-up (a Python version manager, say) is not a fresh host's: bash
# reads it for every command sshd runs, so each lab host sees an empty one instead.
ROOT_BASHRC = Path("/root/.bashrc")
# A syslog socket for one lab host: every datagram becomes a line of its log file.
SYSLOG_RECEIVER = """
import os, socket, sys, time
path, log = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
server.bind(path)
os.chmod(path, 0o666)
with open(log, "ab", buffering=0) as out:
    while True:
        message = server.recv(65536).rstrip(b"\\0\\n")
        out.write(time.strftime("%Y-%m-%dT%H:%M:%S ").encode() + message + b"\\n")
"""


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
    nameserver: str = ""  # the host's resolver; empty: the machine's
    syslog: bool = False  # a /dev/log of its own, logged to ``root/syslog``
    root: Path = field(init=False)
    address: str = field(init=False)
    gateway: str = field(init=False)
    client_key: str = field(init=False)  # what Mailgate logs in with
    host_key: str = field(init=False)  # what Mailgate must pin
    anchor_pid: int = field(init=False, default=0)
    helper_pids: list[int] = field(init=False, default_factory=list)  # outside the namespace
    sshd: subprocess.Popen | None = field(init=False, default=None)
    _made_dirs: list[str] = field(init=False, default_factory=list)
    _made_files: list[str] = field(init=False, default_factory=list)

    @classmethod
    def create(
        cls,
        prefix: str = "mg",
        private_dirs: tuple[str, ...] = (),
        *,
        nameserver: str = "",
        syslog: bool = False,
    ) -> "LabHost":
        host = cls(
            name=f"{prefix}-{secrets.token_hex(3)}",
            private_dirs=private_dirs,
            nameserver=nameserver,
            syslog=syslog,
        )
        try:
            host._build()
        except BaseException:
            host.close()
            raise
        return host

    def state(self) -> dict:
        """What another process needs to use or remove this host (``from_state``)."""
        return {
            "name": self.name,
            "private_dirs": list(self.private_dirs),
            "nameserver": self.nameserver,
            "syslog": self.syslog,
            "root": str(self.root),
            "address": self.address,
            "gateway": self.gateway,
            "client_key": self.client_key,
            "host_key": self.host_key,
            "anchor_pid": self.anchor_pid,
            "helper_pids": self.helper_pids,
            "made_dirs": self._made_dirs,
            "made_files": self._made_files,
        }

    @classmethod
    def from_state(cls, state: dict) -> "LabHost":
        host = cls(
            name=state["name"],
            private_dirs=tuple(state["private_dirs"]),
            nameserver=state["nameserver"],
            syslog=state["syslog"],
        )
        host.root = Path(state["root"])
        for name in ("address", "gateway", "client_key", "host_key", "anchor_pid"):
            setattr(host, name, state[name])
        host.helper_pids = list(state["helper_pids"])
        host._made_dirs = list(state["made_dirs"])
        host._made_files = list(state["made_files"])
        return host

    @property
    def veth(self) -> str:
        return f"v{self.name[-6:]}"

    @property
    def netns_etc(self) -> Path:
        """Files that ``ip netns exec`` mounts over the machine's /etc for this host."""
        return Path("/etc/netns") / self.name

    def _build(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        block = _free_block(int(self.name[-6:], 16) % 250)
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
        if self.nameserver:
            self._set_resolver()
        if self.syslog:
            self._start_syslog()
        self.client_key, public = ed25519_key()
        (self.root / "authorized_keys").write_text(public + "\n")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / "host_key"))
        self.host_key = " ".join((self.root / "host_key.pub").read_text().split()[:2])
        self._start_anchor()
        self.start_sshd()

    def _prepare_private(self, path: str) -> None:
        copy = self.root / "private" / path.strip("/")
        # A folder another lab host made is a mount point, not the machine's: share it. The
        # machine's own is copied under the registry's lock: another lab host that made or
        # removed a mount point inside it (/etc/letsencrypt in /etc) would break the copy.
        with _mount_point_users() as users:
            copied = Path(path).is_dir() and path not in users
            if copied:
                copy.parent.mkdir(parents=True, exist_ok=True)
                sh("cp", "-a", path, str(copy))  # owners too: Postfix checks its queue's
        if not copied:
            copy.mkdir(parents=True)
            _claim_mount_point(Path(path), self.root, lambda made: made.mkdir(parents=True))
            self._made_dirs.append(path)

    def _set_resolver(self) -> None:
        """``ip netns exec`` mounts the host's own resolv.conf; a host whose whole /etc is
        private has it in its copy instead (the copy is mounted over those mounts)."""
        text = f"nameserver {self.nameserver}\n"
        with _mount_point_users():  # not while another lab host copies the machine's /etc
            self.netns_etc.mkdir(parents=True, exist_ok=True)
            (self.netns_etc / "resolv.conf").write_text(text)
        private_etc = self.root / "private/etc"
        if private_etc.is_dir():
            (private_etc / "resolv.conf").unlink(missing_ok=True)
            (private_etc / "resolv.conf").write_text(text)

    def _start_syslog(self) -> None:
        """A receiver on a socket of this host's own; the anchor mounts it over /dev/log,
        which must exist on the machine as a mount point (an empty file where none does)."""
        socket_path = self.root / "syslog.sock"
        receiver = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", SYSLOG_RECEIVER, str(socket_path), str(self.root / "syslog")],
            start_new_session=True,
            **_DETACHED,
        )
        self.helper_pids.append(receiver.pid)
        if not DEV_LOG.exists() or str(DEV_LOG) in _mount_points():
            _claim_mount_point(DEV_LOG, self.root, Path.touch)
            self._made_files.append(str(DEV_LOG))
        _wait_until(socket_path.exists, f"the syslog socket of {self.name} did not appear")

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
        mounts = [(self.root / "private" / path.strip("/"), path) for path in self.private_dirs]
        if self.syslog:
            mounts.append((self.root / "syslog.sock", str(DEV_LOG)))
        if ROOT_BASHRC.exists():
            (self.root / "bashrc").write_text("")
            mounts.append((self.root / "bashrc", str(ROOT_BASHRC)))
        commands = "".join(f"mount --bind {source} {target} && " for source, target in mounts)
        log = self.root / "anchor.log"
        with log.open("wb") as errors:
            anchor = subprocess.Popen(  # noqa: S603
                [
                    *NETNS_EXEC,
                    self.name,
                    *PRIVATE_MOUNTS,
                    "sh",
                    "-c",
                    f"{commands}exec sleep infinity",
                ],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
            )
        self.anchor_pid = anchor.pid
        try:
            _wait_until(
                lambda: _command(anchor.pid) == "sleep infinity",
                f"the private mounts of {self.name} failed",
                failed=lambda: anchor.poll() is not None,
            )
        except LabError as exc:
            raise LabError(f"{exc}: {log.read_text()}") from None

    def start_sshd(self) -> None:
        """Start sshd in the host's network namespace and private mount namespace."""
        Path("/run/sshd").mkdir(exist_ok=True)
        config, log = self._sshd_config(), self.root / "sshd.log"
        self.sshd = subprocess.Popen(  # noqa: S603
            [*self._enter(), SSHD, "-D", "-f", str(config), "-E", str(log)],
            start_new_session=True,
            **_DETACHED,
        )
        self._wait_for_sshd()

    def _enter(self) -> list[str]:
        return [NSENTER, "--target", str(self.anchor_pid), "--mount", "--net"]

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
            for pid in self.pids():
                if _command(pid).startswith(("sshd", SSHD)):
                    _kill(pid)
            self.sshd.wait(timeout=10)

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: dict | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a shell command as the lab host sees the world (its network and its files);
        ``env`` adds variables and ``stdin`` is its input (a password in either stays out of
        every command line)."""
        return subprocess.run(  # noqa: S603
            [*self._enter(), "sh", "-c", command],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
            input=stdin,
        )

    def popen(self, *command: str, **options) -> subprocess.Popen:
        """Start a long-running program on the host; ``close()`` ends it with the host."""
        return subprocess.Popen([*self._enter(), *command], start_new_session=True, **options)  # noqa: S603

    def read(self, path: str) -> bytes | None:
        result = subprocess.run(  # noqa: S603
            [*self._enter(), "cat", path],
            capture_output=True,
            check=False,
        )
        return result.stdout if result.returncode == 0 else None

    def log(self) -> str:
        """What the host's programs wrote to syslog."""
        path = self.root / "syslog"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        """The processes running in the host's network namespace."""
        output = sh("ip", "netns", "pids", self.name, check=False)
        return [int(pid) for pid in output.split()]

    def close(self) -> None:
        for pid in (*self.pids(), self.anchor_pid, *self.helper_pids):
            if pid:
                _kill(pid)
                _reap(pid)
        if self.sshd:
            self.sshd.wait(timeout=10)
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "link", "del", self.veth, check=False)
        with _mount_point_users():  # not while another lab host copies the machine's /etc
            shutil.rmtree(self.netns_etc, ignore_errors=True)
        for path in (*self._made_dirs, *self._made_files):
            _release_mount_point(Path(path), self.root)
        if getattr(self, "root", None):
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def _mount_point_users():
    """The registry of mount points (``MOUNT_POINTS``), locked while it is read and written:
    {path: [the root folder of each lab host using it]}. Its lock is also held while a lab host
    copies a machine folder or changes the machine's /etc, so that neither happens mid-copy."""
    with open(f"{MOUNT_POINTS}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users = _mount_points()
        yield users
        MOUNT_POINTS.write_text(json.dumps(users))


def _mount_points() -> dict[str, list[str]]:
    return json.loads(MOUNT_POINTS.read_text()) if MOUNT_POINTS.exists() else {}


def _claim_mount_point(path: Path, root: Path, make) -> None:
    """Make ``path`` on the machine, where no lab host did already, and count ``root``'s host
    among its users."""
    with _mount_point_users() as users:
        if str(path) not in users and not path.exists():
            make(path)
        users.setdefault(str(path), []).append(str(root))


def _release_mount_point(path: Path, root: Path) -> None:
    """Remove ``path`` once no lab host uses it (a user whose folder is gone has ended)."""
    with _mount_point_users() as users:
        left = [user for user in users.get(str(path), []) if user != str(root)]
        left = [user for user in left if Path(user).exists()]
        if left:
            users[str(path)] = left
            return
        users.pop(str(path), None)
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # empty, as made: a mount point
        else:
            path.unlink(missing_ok=True)


# Programs that outlive the command that started them (``manage.py lab up``) must not hold its
# output open, or whoever reads that output would wait for the lab to end.
_DETACHED = {
    "stdin": subprocess.DEVNULL,
    "stdout": subprocess.DEVNULL,
    "stderr": subprocess.DEVNULL,
}


def _free_block(start: int) -> int:
    """The first /30 link network from ``start`` on that no lab host uses yet: two hosts on one
    network would answer for each other's address."""
    used = sh("ip", "-4", "-o", "addr", "show")
    for offset in range(250):
        block = (start + offset) % 250
        if f" {LINK_NETWORK.format(block=block, host=1)}/" not in used:
            return block
    raise LabError("Every lab link network (198.18.0.0/16) is taken.")


def _wait_until(condition, message: str, *, failed=lambda: False, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if failed() or time.monotonic() > deadline:
            raise LabError(message)
        time.sleep(0.01)


def _reap(pid: int) -> None:
    """Collect a killed child of this process (not a zombie); others are reaped by init."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
