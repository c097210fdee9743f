from gateway.forms import LinesField, MultilineSecretField, PanelForm, SecretField
from hosts.models import Host, Relay, Tunnel, TunnelPeer


def _help(model, name: str) -> str:
    return model._meta.get_field(name).help_text


class HostForm(PanelForm):
    ssh_private_key = MultilineSecretField(
        label="SSH private key", help_text=_help(Host, "ssh_private_key")
    )
    lan_networks = LinesField(
        label="LAN networks", required=False, help_text=_help(Host, "lan_networks")
    )
    cloudflare_api_token = SecretField(
        label="Cloudflare API token", help_text=_help(Host, "cloudflare_api_token")
    )
    mailu_secret_key = SecretField(
        label="Mailu secret key", help_text=_help(Host, "mailu_secret_key")
    )

    class Meta:
        model = Host
        fields = [
            "name",
            "is_gateway",
            "is_mailserver",
            "is_relay",
            "ssh_address",
            "ssh_port",
            "ssh_user",
            "ssh_private_key",
            "ssh_host_key",
            "public_ipv4",
            "public_ipv6",
            "tunnel_address",
            "fqdn",
            "tls_certificate_path",
            "tls_key_path",
            "lan_networks",
            "wan_interface",
            "acme_email",
            "cloudflare_api_token",
            "mailu_secret_key",
            "mail_backend",
            "gateway_proxy",
            "relay",
        ]


class RelayForm(PanelForm):
    class Meta:
        model = Relay
        fields = [
            "name",
            "kind",
            "host",
            "port",
            "username",
            "password",
            "tls_level",
            "tls_certificate",
            "rewrite_sender_to",
        ]


class TunnelForm(PanelForm):
    class Meta:
        model = Tunnel
        fields = ["interface", "hub", "listen_port", "subnet", "mtu", "hub_private_key"]


class TunnelPeerForm(PanelForm):
    class Meta:
        model = TunnelPeer
        fields = ["tunnel", "host", "private_key", "routed_subnet", "keepalive", "egress_via_hub"]
