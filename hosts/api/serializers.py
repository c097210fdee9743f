from rest_framework import serializers

from gateway.api.base import ModelCleanSerializer
from hosts.models import Host, Relay, Tunnel, TunnelPeer


class HostSerializer(ModelCleanSerializer):
    class Meta:
        model = Host
        fields = [
            "id",
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
            "created_at",
        ]


class RelaySerializer(ModelCleanSerializer):
    next_hop = serializers.CharField(read_only=True)

    class Meta:
        model = Relay
        fields = [
            "id",
            "name",
            "kind",
            "host",
            "port",
            "next_hop",
            "username",
            "password",
            "tls_level",
            "tls_certificate",
            "rewrite_sender_to",
            "created_at",
        ]


class TunnelPeerSerializer(ModelCleanSerializer):
    public_key = serializers.CharField(read_only=True)

    class Meta:
        model = TunnelPeer
        fields = [
            "id",
            "tunnel",
            "host",
            "public_key",
            "private_key",
            "routed_subnet",
            "keepalive",
            "egress_via_hub",
        ]


class TunnelSerializer(ModelCleanSerializer):
    hub_public_key = serializers.CharField(read_only=True)
    peers = TunnelPeerSerializer(many=True, read_only=True)

    class Meta:
        model = Tunnel
        fields = [
            "id",
            "interface",
            "hub",
            "listen_port",
            "subnet",
            "mtu",
            "hub_public_key",
            "hub_private_key",
            "peers",
            "created_at",
        ]
