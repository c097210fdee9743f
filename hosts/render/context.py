"""Everything a host's renderers read, loaded once: the host, its place in the tunnel, the
hosts it talks to, and a snapshot of the mail directory. Renderers are pure functions of it."""

import ipaddress
from dataclasses import dataclass, field

from gateway.bundle import RenderError
from gateway.selectors import MailDirectory, mail_directory
from hosts.acme import AcmeServer, acme_server
from hosts.choices import GatewayProxy, MailBackend
from hosts.models import Host, Tunnel, TunnelPeer

CERTBOT_LIVE = "/etc/letsencrypt/live"

# The gateway forwards these ports to the mail server through the tunnel, each connection
# preceded by a PROXY v2 header; the mail server must expect the header on exactly these ports.
MAIL_PORTS = {25: "smtp", 465: "submissions", 587: "submission", 993: "imaps", 995: "pop3s"}
SIEVE_PORT = 4190
HTTPS_PORT = 443
PROXY_PROTOCOL_PORTS = (25, 443, 465, 587, 993, 995, 4190)
# What each mail backend serves behind the gateway: Mailu all of them (443: admin, webmail,
# autoconfig), Postfix + Dovecot SMTP, submission and IMAPS (hosts.render.postfix, dovecot).
# The gateways forward only these, and DNS advertises only these (zones.records).
SERVED_PORTS = {
    MailBackend.MAILU: PROXY_PROTOCOL_PORTS,
    MailBackend.POSTFIX_DOVECOT: (25, 465, 587, 993),
}

# Where the gateway's nginx serves the Web Key Directory: on the all-HAProxy gateway, nginx on the
# host behind HAProxy's SNI routing; on the Traefik gateway, an nginx container beside Traefik (as
# in the Mailu-behind-Traefik guide, docs/reference-setups.md) whose document root is this folder.
WKD_ROOTS = {
    GatewayProxy.HAPROXY: "/var/lib/mailgate/wkd",
    GatewayProxy.TRAEFIK_HAPROXY: "/opt/traefik/wkd/public",
}
WKD_BACKEND = ("127.0.0.1", 8443)  # nginx (TLS + PROXY v2) behind HAProxy
# The Traefik gateway's WKD container: Traefik's compose file runs it, the nginx renderer writes
# its server block; both take these names from here so they cannot drift apart.
WKD_CONTAINER = "wkd_nginx"
WKD_CONTAINER_IMAGE = "nginx:1.29.3"
WKD_CONTAINER_ROOT = "/usr/share/nginx/html"  # where it mounts the WKD root
# Where it mounts the server block: over the image's default server, which would take port 80
# from Traefik (the container runs on the host's network, as Traefik does).
WKD_CONTAINER_CONF = "/etc/nginx/conf.d/default.conf"
WKD_CONTAINER_LISTEN = ("127.0.0.1", 8080)  # plain HTTP, for Traefik alone
WKD_CONTAINER_CONF_SOURCE = "/opt/traefik/wkd/nginx.conf"
# The gateway nginx's own loopback server of autodiscover answers (hosts/render/nginx.py).
CLIENT_SETUP_ANSWERS = ("127.0.0.1", 8082)
# ACME HTTP-01 (RFC 8555 §8.3) on the all-HAProxy gateway: HAProxy's port 80 sends this path to
# the nginx server on ACME_CHALLENGE_BACKEND, which serves the key authorizations Mailgate
# writes into ACME_CHALLENGE_ROOT (certs.issuer) and passes every other token on to the mail
# server (docs/certificates.md).
ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/"
ACME_CHALLENGE_ROOT = "/var/lib/mailgate/acme-challenge"
ACME_CHALLENGE_BACKEND = ("127.0.0.1", 8081)
# An ACME token, and so the name of its file there: base64url, nothing else (RFC 8555 §8.3).
BASE64URL = r"[A-Za-z0-9_-]+"


@dataclass(frozen=True)
class RenderContext:
    host: Host
    directory: MailDirectory
    hub_of: Tunnel | None  # the tunnel this host is the hub of
    peers: tuple[TunnelPeer, ...]  # that tunnel's spokes, with their hosts
    spoke_of: TunnelPeer | None  # this host's own membership as a spoke
    # The setup's ACME server (the settings' for Mailgate's own client), for the gateway's own
    # ACME client (Traefik's resolvers).
    acme: AcmeServer = field(default_factory=AcmeServer)

    @property
    def hostname(self) -> str:
        """The host's public name (myhostname, HELO, certificate name)."""
        return self.host.public_name(self.directory.domains)

    @property
    def certificate(self) -> str:
        return self.host.tls_certificate_path or f"{CERTBOT_LIVE}/{self.hostname}/fullchain.pem"

    @property
    def certificate_key(self) -> str:
        return self.host.tls_key_path or f"{CERTBOT_LIVE}/{self.hostname}/privkey.pem"

    @property
    def other_certificates(self) -> dict[str, tuple[str, str]]:
        """The mail host names beside the host's own that its mail services answer for, each
        with its certbot certificate chain and key (``SNI``: every MX name of MTA-STS must
        present its own). None where the host names one certificate file for everything."""
        if self.host.tls_certificate_path:
            return {}
        names = sorted({d.mail_hostname for d in self.directory.domains} - {self.hostname})
        return {
            name: (f"{CERTBOT_LIVE}/{name}/fullchain.pem", f"{CERTBOT_LIVE}/{name}/privkey.pem")
            for name in names
        }

    @property
    def wkd_root(self) -> str | None:
        """The gateway's WKD document root (``.well-known/openpgpkey/...`` lies below it)."""
        return WKD_ROOTS.get(self.host.gateway_proxy) if self.host.is_gateway else None

    @property
    def gateway(self) -> Host | None:
        """The hub this host reaches the internet through, if it is a spoke."""
        return self.spoke_of.tunnel.hub if self.spoke_of else None

    @property
    def served_ports(self) -> tuple[int, ...]:
        """For a gateway: the ports its mail server serves (``SERVED_PORTS``)."""
        backend = self.mailserver_peer.host.mail_backend
        if backend not in SERVED_PORTS:
            raise RenderError(f"{self.mailserver_peer.host} has no known mail backend.")
        return SERVED_PORTS[backend]

    @property
    def hub_tunnel_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """For a mail server: the one address whose PROXY header it believes, the hub's in the
        tunnel (Dovecot's trusted network, the mail guard's only client)."""
        hub = self.gateway
        try:
            return ipaddress.ip_address(hub.tunnel_address if hub else "")
        except ValueError:
            raise RenderError(
                f"{self.host} receives mail through the gateway's PROXY header, so it must be a "
                "spoke of a tunnel whose hub has a tunnel address."
            ) from None

    @property
    def mailserver_peer(self) -> TunnelPeer | None:
        """For a gateway: the spoke that holds the mailboxes, where inbound mail goes."""
        return next((peer for peer in self.peers if peer.host.is_mailserver), None)


def load_context(
    host: Host, *, directory: MailDirectory | None = None, acme: AcmeServer | None = None
) -> RenderContext:
    """Load what ``host``'s renderers read; pass ``directory`` to share one snapshot of the
    mail directory among several hosts, ``acme`` to read the ACME server's settings once."""
    hub_of = Tunnel.objects.filter(hub=host).first()
    peers = (
        tuple(TunnelPeer.objects.filter(tunnel=hub_of).select_related("host", "tunnel"))
        if hub_of
        else ()
    )
    spoke_of = TunnelPeer.objects.filter(host=host).select_related("tunnel__hub", "host").first()
    return RenderContext(
        host=host,
        directory=directory if directory is not None else mail_directory(),
        hub_of=hub_of,
        peers=peers,
        spoke_of=spoke_of,
        acme=acme if acme is not None else acme_server(),
    )
