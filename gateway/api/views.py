from rest_framework import exceptions, mixins, viewsets

from gateway.api import serializers
from gateway.api.base import ScopedViewSet
from gateway.models import Alias, ApiToken, Domain, Mailbox


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


class ApiTokenViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens. A token limited to domains cannot manage tokens."""

    serializer_class = serializers.ApiTokenSerializer

    def get_queryset(self):
        return ApiToken.objects.manageable_by(self.request.user).prefetch_related("domains")

    def create(self, request, *args, **kwargs):
        if getattr(request.user, "token_domain_ids", None) is not None:
            raise exceptions.PermissionDenied("A token limited to domains cannot make tokens.")
        return super().create(request, *args, **kwargs)
