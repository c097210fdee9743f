from gateway.forms import MultilineSecretField, PanelForm
from hosts.models import Host, Relay, Tunnel, TunnelPeer


class HostForm(PanelForm):
    ssh_private_key = MultilineSecretField(
        label="SSH private key", help_text=Host._meta.get_field("ssh_private_key").help_text
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
        ]


class TunnelForm(PanelForm):
    class Meta:
        model = Tunnel
        fields = ["interface", "hub", "listen_port", "subnet", "mtu", "hub_private_key"]


class TunnelPeerForm(PanelForm):
    class Meta:
        model = TunnelPeer
        fields = ["tunnel", "host", "private_key", "routed_subnet", "keepalive", "egress_via_hub"]
