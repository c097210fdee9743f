"""Everything a host's renderers read, loaded once: the host, its place in the tunnel, the
hosts it talks to, and a snapshot of the mail directory. Renderers are pure functions of it."""

from dataclasses import dataclass

from gateway.selectors import MailDirectory, mail_directory
from hosts.models import Host, Tunnel, TunnelPeer

CERTBOT_LIVE = "/etc/letsencrypt/live"


@dataclass(frozen=True)
class RenderContext:
    host: Host
    directory: MailDirectory
    hub_of: Tunnel | None  # the tunnel this host is the hub of
    peers: tuple[TunnelPeer, ...]  # that tunnel's spokes, with their hosts
    spoke_of: TunnelPeer | None  # this host's own membership as a spoke

    @property
    def hostname(self) -> str:
        """The host's public name (myhostname, HELO, certificate name)."""
        return self.host.fqdn or self.directory.primary_hostname or f"{self.host.name}.invalid"

    @property
    def certificate(self) -> str:
        return self.host.tls_certificate_path or f"{CERTBOT_LIVE}/{self.hostname}/fullchain.pem"

    @property
    def certificate_key(self) -> str:
        return self.host.tls_key_path or f"{CERTBOT_LIVE}/{self.hostname}/privkey.pem"

    @property
    def gateway(self) -> Host | None:
        """The hub this host reaches the internet through, if it is a spoke."""
        return self.spoke_of.tunnel.hub if self.spoke_of else None

    @property
    def mailserver_peer(self) -> TunnelPeer | None:
        """For a gateway: the spoke that holds the mailboxes, where inbound mail goes."""
        return next((peer for peer in self.peers if peer.host.is_mailserver), None)


def load_context(host: Host) -> RenderContext:
    hub_of = Tunnel.objects.filter(hub=host).first()
    peers = (
        tuple(TunnelPeer.objects.filter(tunnel=hub_of).select_related("host", "tunnel"))
        if hub_of
        else ()
    )
    spoke_of = TunnelPeer.objects.filter(host=host).select_related("tunnel__hub", "host").first()
    return RenderContext(
        host=host,
        directory=mail_directory(),
        hub_of=hub_of,
        peers=peers,
        spoke_of=spoke_of,
    )
