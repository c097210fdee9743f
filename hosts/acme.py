"""The ACME server that the whole setup gets its certificates from, as the settings name it for
Mailgate's own ACME client (``MAILGATE_ACME_DIRECTORY``, ``MAILGATE_ACME_CA_FILE``;
docs/certificates.md). The renderers get it through the render context, so that Traefik's
certificate resolvers ask the same server and trust the same CAs for its HTTPS
(docs/traefik.md); the renderers themselves read no setting."""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from gateway.bundle import RenderError

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"  # ACME clients' default


@dataclass(frozen=True)
class AcmeServer:
    """An ACME server's directory URL, and the PEM of the CAs to trust for its HTTPS (empty:
    the system's), as read; the renderers validate what they write of it."""

    directory: str = LETS_ENCRYPT
    ca_pem: bytes = b""


def acme_server() -> AcmeServer:
    """The setup's ACME server, from the settings."""
    ca_file = settings.MAILGATE_ACME_CA_FILE
    try:
        ca_pem = Path(ca_file).read_bytes() if ca_file else b""
    except OSError as exc:
        raise RenderError(f"MAILGATE_ACME_CA_FILE cannot be read: {exc}") from None
    return AcmeServer(directory=settings.MAILGATE_ACME_DIRECTORY, ca_pem=ca_pem)
