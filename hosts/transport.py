"""SSH to the hosts, through paramiko: the one module that talks to the network (and the one
seam a test may patch).

Host keys are pinned. The first contact only *fetches* the host's key (``scan_host_key``) for
the owner to confirm; a connection is made only to a host whose confirmed key it presents, and a
different key is refused, never learned. Logins use the host's private key, decrypted from the
database for the length of the connection and never written to disk.
"""

import base64
import codecs
import hashlib
import io
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

CONNECT_TIMEOUT = 10
COMMAND_TIMEOUT = 300
READ_WAIT = 0.5  # how long a Stream.read waits for output before it returns to its caller
_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class TransportError(Exception):
    """The host could not be reached or did not do what was asked; the message says why."""


class HostKeyNotPinned(TransportError):
    pass


class HostKeyMismatch(TransportError):
    pass


@dataclass(frozen=True)
class RemoteResult:
    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def fingerprint(host_key: str) -> str:
    """The key's SHA256 fingerprint as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(host_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def scan_host_key(address: str, port: int, *, timeout: float = CONNECT_TIMEOUT) -> str:
    """The key the SSH server at ``address:port`` presents ('ssh-ed25519 AAAA…'), fetched
    without logging in, for the owner to compare with the host's own before pinning it."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=timeout)
                key = transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, paramiko.SSHException) as exc:
        raise TransportError(f"Cannot reach {address}:{port} over SSH: {exc}") from None
    return f"{key.get_name()} {key.get_base64()}"


def load_private_key(text: str) -> paramiko.PKey:
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise TransportError(
        "The host's SSH private key is not an unencrypted Ed25519, ECDSA or RSA key."
    )


class Session:
    """An SSH connection to one host: commands with a timeout, and files over SFTP."""

    def __init__(self, host, *, connect_timeout: float = CONNECT_TIMEOUT):
        if not host.ssh_host_key:
            raise HostKeyNotPinned(
                f"{host}'s SSH host key is not confirmed yet: fetch it, compare its fingerprint "
                "with the host's own, and confirm it."
            )
        self.host = host
        self.client = paramiko.SSHClient()
        key_type, key_data = host.ssh_host_key.split()[:2]
        pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_data))
        self.client.get_host_keys().add(_known_hosts_name(host), key_type, pinned)
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self.client.connect(
                host.ssh_address,
                port=host.ssh_port,
                username=host.ssh_user,
                pkey=load_private_key(host.ssh_private_key),
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
                auth_timeout=connect_timeout,
                look_for_keys=False,
                allow_agent=False,
            )
        except paramiko.BadHostKeyException as exc:
            self.client.close()
            raise HostKeyMismatch(
                f"{host} presented a different SSH host key ({fingerprint(_openssh(exc.key))}) "
                f"than the confirmed one ({fingerprint(host.ssh_host_key)}). Refusing to connect: "
                "if the host was reinstalled, confirm its new key."
            ) from None
        except (OSError, paramiko.SSHException) as exc:
            self.client.close()
            raise TransportError(f"Cannot connect to {host} ({host.ssh_address}): {exc}") from None
        self._sftp = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.client.close()

    def run(
        self, command: str, *, stdin: bytes = b"", timeout: float = COMMAND_TIMEOUT
    ) -> RemoteResult:
        """Run ``command`` with ``sh -c`` semantics; the output is decoded leniently."""
        try:
            channel = self.client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout, stderr = _drain(channel, deadline=time.monotonic() + timeout)
            status = channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException, AttributeError) as exc:
            raise TransportError(f"Lost the connection to {self.host}: {exc or 'closed'}") from None
        return RemoteResult(
            status, stdout.decode(errors="replace"), stderr.decode(errors="replace")
        )

    @contextmanager
    def stream(self, command: str, *, timeout: float = COMMAND_TIMEOUT):
        """Run ``command`` on a channel that stays open: a conversation, where Mailgate sends to
        its stdin while it reads its output (stdout and stderr together) as it comes."""
        try:
            channel = self.client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            channel.set_combine_stderr(True)
            channel.settimeout(READ_WAIT)
            channel.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException, AttributeError) as exc:
            raise TransportError(f"Lost the connection to {self.host}: {exc or 'closed'}") from None
        try:
            yield Stream(channel, self.host, deadline=time.monotonic() + timeout)
        finally:
            channel.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def put(self, path: str, content: bytes, mode: int = 0o600) -> None:
        try:
            with self.sftp.open(path, "wb") as remote:
                remote.set_pipelined(True)
                remote.write(content)
            self.sftp.chmod(path, mode)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"Cannot write {path} on {self.host}: {exc}") from None

    def get(self, path: str) -> bytes:
        try:
            with self.sftp.open(path, "rb") as remote:
                return remote.read()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"Cannot read {path} on {self.host}: {exc}") from None


class Stream:
    """One command's open channel (``Session.stream``)."""

    def __init__(self, channel, host, *, deadline: float):
        self.channel, self.host, self.deadline = channel, host, deadline
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def send(self, data: bytes) -> None:
        try:
            self.channel.settimeout(max(self.deadline - time.monotonic(), READ_WAIT))
            self.channel.sendall(data)
            self.channel.settimeout(READ_WAIT)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"Lost the connection to {self.host}: {exc or 'closed'}") from None

    def read(self) -> str | None:
        """What the command printed since the last read, waiting up to ``READ_WAIT`` seconds
        for something ("" when nothing came); None once the command has ended."""
        if time.monotonic() > self.deadline:
            raise TransportError(f"The command on {self.host} timed out")
        try:
            data = self.channel.recv(65536)
        except TimeoutError:
            return ""
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransportError(f"Lost the connection to {self.host}: {exc or 'closed'}") from None
        if not data:
            return None
        return self._decoder.decode(data)


def _drain(channel, *, deadline: float) -> tuple[bytes, bytes]:
    stdout, stderr = bytearray(), bytearray()
    while True:
        if channel.recv_ready():
            stdout += channel.recv(65536)
        elif channel.recv_stderr_ready():
            stderr += channel.recv_stderr(65536)
        elif channel.exit_status_ready() and not channel.recv_ready():
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            return bytes(stdout), bytes(stderr)
        elif channel.closed or time.monotonic() > deadline:
            raise TransportError("the command timed out" if not channel.closed else "closed")
        else:
            time.sleep(0.005)


def _known_hosts_name(host) -> str:
    return host.ssh_address if host.ssh_port == 22 else f"[{host.ssh_address}]:{host.ssh_port}"


def _openssh(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"
