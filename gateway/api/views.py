from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway import selectors, services
from gateway.api import filters, serializers
from gateway.api.base import ScopedViewSet
from gateway.api.schema import errors
from gateway.models import (
    Alias,
    ApiToken,
    AppPassword,
    Domain,
    Mailbox,
    StatusChange,
    StatusItem,
)
from gateway.scoping import limited_by_token
from gateway.status import Colour


class DomainViewSet(ScopedViewSet):
    queryset = Domain.objects.all()
    serializer_class = serializers.DomainSerializer
    filterset_class = filters.DomainFilter
    search_fields = ["name", "mail_hostname"]

    def get_queryset(self):
        return super().get_queryset().prefetch_related("managers")

    @extend_schema(responses={200: serializers.DomainDeletedSerializer})
    def destroy(self, request, *args, **kwargs):
        """Delete the domain; ``effects`` says what that did to other rows (API tokens left
        without any domain stay limited and reach nothing)."""
        domain = self.get_object()
        name, effects = str(domain), selectors.domain_delete_effects(domain)
        domain.delete()
        return Response({"detail": f"Deleted {name}.", "effects": effects})


class MailboxViewSet(ScopedViewSet):
    """Mailboxes; the mailbox's own user may change its settings (``Mailbox.SETTINGS_FIELDS``)
    and password too, the serializer refusing the rest."""

    queryset = Mailbox.objects.all()
    serializer_class = serializers.MailboxSerializer
    filterset_class = filters.MailboxFilter
    search_fields = ["local_part", "display_name", "domain__name"]
    owner_only = False
    select_related = ("domain",)
    self_service_actions = ("update", "partial_update")


class AliasViewSet(ScopedViewSet):
    queryset = Alias.objects.all()
    serializer_class = serializers.AliasSerializer
    filterset_class = filters.AliasFilter
    search_fields = ["local_part", "domain__name"]
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
        # Refused before the body is read: a limited token never gets to try a password.
        if limited_by_token(request.user):
            raise exceptions.PermissionDenied("A token limited to domains cannot make tokens.")
        return super().create(request, *args, **kwargs)


class AppPasswordViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Device passwords of the mailboxes you may see: made for one device, shown once on
    creation (``password``), revoked by deleting them."""

    serializer_class = serializers.AppPasswordSerializer

    def get_queryset(self):
        rows = AppPassword.objects.manageable_by(self.request.user).select_related("mailbox")
        mailbox = self.request.query_params.get("mailbox")
        return rows.filter(mailbox=mailbox) if mailbox and mailbox.isdigit() else rows


COLOUR_FILTER = OpenApiParameter("colour", enum=Colour.values, description="Only this colour.")


@extend_schema(parameters=[COLOUR_FILTER])
class StatusItemViewSet(viewsets.ReadOnlyModelViewSet):
    """The status page's items as last checked: a domain's managers see that domain's DNS and
    keys, the owner everything (hosts, tunnel, ports, TLS, open relay)."""

    serializer_class = serializers.StatusItemSerializer

    def get_queryset(self):
        items = StatusItem.objects.visible_to(self.request.user)
        colour = self.request.query_params.get("colour")
        return items.filter(colour=colour) if colour in Colour.values else items

    @extend_schema(request=None, responses={202: None, **errors(exceptions.Throttled)})
    @action(detail=False, methods=["post"], pagination_class=None)
    def check(self, request):
        """Run every status probe now (in a worker); read the results here a minute later.
        The owner's alone, at most once a minute (429 with Retry-After otherwise)."""
        try:
            services.status_refresh_queue(user=request.user)
        except services.TooSoon as exc:
            raise exceptions.Throttled(wait=exc.wait, detail=str(exc)) from None
        return Response(status=status.HTTP_202_ACCEPTED)


class StatusChangeViewSet(viewsets.ReadOnlyModelViewSet):
    """The history of the status page: every change of an item's colour, newest first."""

    serializer_class = serializers.StatusChangeSerializer

    def get_queryset(self):
        return StatusChange.objects.visible_to(self.request.user)
