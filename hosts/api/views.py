from gateway.api.base import ScopedViewSet
from hosts.api import serializers
from hosts.models import Host, Relay, Tunnel, TunnelPeer


class HostViewSet(ScopedViewSet):
    queryset = Host.objects.all()
    serializer_class = serializers.HostSerializer
    select_related = ("relay",)


class RelayViewSet(ScopedViewSet):
    queryset = Relay.objects.all()
    serializer_class = serializers.RelaySerializer


class TunnelViewSet(ScopedViewSet):
    queryset = Tunnel.objects.all()
    serializer_class = serializers.TunnelSerializer
    select_related = ("hub",)

    def get_queryset(self):
        return super().get_queryset().prefetch_related("peers")


class TunnelPeerViewSet(ScopedViewSet):
    queryset = TunnelPeer.objects.all()
    serializer_class = serializers.TunnelPeerSerializer
    select_related = ("host", "tunnel")
