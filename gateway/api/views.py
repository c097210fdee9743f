from gateway.api import serializers
from gateway.api.base import ScopedViewSet
from gateway.models import Alias, Domain, Mailbox


class DomainViewSet(ScopedViewSet):
    queryset = Domain.objects.all()
    serializer_class = serializers.DomainSerializer

    def get_queryset(self):
        return super().get_queryset().prefetch_related("managers")


class MailboxViewSet(ScopedViewSet):
    queryset = Mailbox.objects.all()
    serializer_class = serializers.MailboxSerializer
    owner_only = False
    select_related = ("domain",)


class AliasViewSet(ScopedViewSet):
    queryset = Alias.objects.all()
    serializer_class = serializers.AliasSerializer
    owner_only = False
    select_related = ("domain",)
