"""What a gateway looks like from the outside, asked from where Mailgate runs: does a port take a
connection, which TLS certificate does it present (implicit TLS, as on 443, 465 and 993), and
does port 25 refuse to relay for a client that has not logged in. Each answer is plain data; the
status probes in ``hosts/status.py`` turn it into colours."""

import contextlib
import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

TIMEOUT = 8.0
PROBE_HELO = "mailgate-status.invalid"


@dataclass(frozen=True)
class Certificate:
    """The certificate a TLS port presented; ``trust_error`` is empty when it verified for the
    name asked."""

    subject: str
    issuer: str
    expires_at: datetime
    trust_error: str


@dataclass(frozen=True)
class RelayAnswer:
    """The gateway's last answer when a client that did not log in asks it to take mail for an
    outside address: at ``stage`` (connect, MAIL or RCPT), ``code`` (0: no answer) and text."""

    stage: str
    code: int
    text: str

    @property
    def relays(self) -> bool:
        return self.stage == "RCPT" and self.code in (250, 251)

    @property
    def refuses(self) -> bool:
        return self.stage == "RCPT" and self.code >= 500


def port_error(address: str, port: int, *, timeout: float = TIMEOUT) -> str:
    """Why a TCP connection to the port fails, or '' when it succeeds."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except OSError as exc:
        return str(exc) or type(exc).__name__
    return ""


def tls_certificate(
    address: str, port: int, server_name: str, *, cafile: str = "", timeout: float = TIMEOUT
) -> Certificate:
    """Shake hands with implicit TLS, sending ``server_name`` (SNI), and verify the chain and
    the name against the system's CAs (plus ``cafile``). A certificate that does not verify is
    fetched again without verification, so that its expiry can still be shown.

    Raises OSError (ssl.SSLError included) when no TLS handshake is possible at all."""
    trusted = ssl.create_default_context()
    if cafile:
        trusted.load_verify_locations(cafile=cafile)
    try:
        der = _peer_certificate(trusted, address, port, server_name, timeout)
        trust_error = ""
    except ssl.SSLCertVerificationError as exc:
        trust_error = exc.verify_message or str(exc)
        der = _peer_certificate(_unverified(), address, port, server_name, timeout)
    certificate = x509.load_der_x509_certificate(der)
    return Certificate(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        expires_at=certificate.not_valid_after_utc,
        trust_error=trust_error,
    )


def _peer_certificate(context, address, port, server_name, timeout) -> bytes:
    with (
        socket.create_connection((address, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        return tls.getpeercert(binary_form=True)


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def relay_answer(address: str, recipient: str, *, port: int = 25, timeout: float = TIMEOUT):
    """Ask the SMTP server to take mail for ``recipient`` (an outside domain) without logging
    in, and hang up before DATA: nothing is ever sent."""
    stage, code, text = "connect", 0, b""
    try:
        with smtplib.SMTP(address, port, local_hostname=PROBE_HELO, timeout=timeout) as smtp:
            smtp.ehlo_or_helo_if_needed()
            stage, (code, text) = "MAIL", smtp.mail("")
            if code == 250:
                stage, (code, text) = "RCPT", smtp.rcpt(recipient)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.rset()  # a server may hang up after refusing: its answer still counts
    except (OSError, smtplib.SMTPException) as exc:
        if not code:
            return RelayAnswer(stage, 0, str(exc) or type(exc).__name__)
    return RelayAnswer(stage, code, text.decode(errors="replace"))
