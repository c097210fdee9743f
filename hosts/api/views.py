from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway.api.base import ScopedViewSet
from hosts import services
from hosts.adopt.api import HostAdoptMixin
from hosts.api import serializers
from hosts.api.deployments import HostDeployMixin
from hosts.models import Host, Relay, Tunnel, TunnelPeer


class HostViewSet(HostDeployMixin, HostAdoptMixin, ScopedViewSet):
    queryset = Host.objects.all()
    serializer_class = serializers.HostSerializer
    filterset_fields = ["is_gateway", "is_mailserver", "is_relay"]
    search_fields = ["name", "ssh_address", "fqdn"]
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

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"], url_path="rotate-keys")
    def rotate_keys(self, request, pk=None):
        """Queue new WireGuard keys for the hub and every spoke (used on the next deploy)."""
        tunnel = self.get_object()
        services.tunnel_rotate_keys_queue(tunnel=tunnel, user=request.user)
        return Response(status=status.HTTP_202_ACCEPTED)


class TunnelPeerViewSet(ScopedViewSet):
    queryset = TunnelPeer.objects.all()
    serializer_class = serializers.TunnelPeerSerializer
    select_related = ("host", "tunnel")
