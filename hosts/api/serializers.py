from rest_framework import serializers

from gateway.api.base import ModelCleanSerializer
from hosts.models import Host, Relay, Tunnel, TunnelPeer


class HostSerializer(ModelCleanSerializer):
    class Meta:
        model = Host
        fields = ["id", *Host.EDITABLE_FIELDS, "created_at"]


class RelaySerializer(ModelCleanSerializer):
    next_hop = serializers.CharField(read_only=True)

    class Meta:
        model = Relay
        fields = ["id", *Relay.EDITABLE_FIELDS, "next_hop", "created_at"]


class TunnelPeerSerializer(ModelCleanSerializer):
    public_key = serializers.CharField(read_only=True)

    class Meta:
        model = TunnelPeer
        fields = ["id", *TunnelPeer.EDITABLE_FIELDS, "public_key"]


class TunnelSerializer(ModelCleanSerializer):
    hub_public_key = serializers.CharField(read_only=True)
    peers = TunnelPeerSerializer(many=True, read_only=True)

    class Meta:
        model = Tunnel
        fields = ["id", *Tunnel.EDITABLE_FIELDS, "hub_public_key", "peers", "created_at"]
