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
        fields = Host.EDITABLE_FIELDS


class RelayForm(PanelForm):
    class Meta:
        model = Relay
        fields = Relay.EDITABLE_FIELDS


class TunnelForm(PanelForm):
    class Meta:
        model = Tunnel
        fields = Tunnel.EDITABLE_FIELDS


class TunnelPeerForm(PanelForm):
    class Meta:
        model = TunnelPeer
        fields = TunnelPeer.EDITABLE_FIELDS
