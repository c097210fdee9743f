from django_filters import rest_framework as django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from gateway.api.base import ScopedViewSet
from gateway.api.filters import domain_name
from gateway.scoping import acts_as_owner
from keys import services
from keys.api import serializers
from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor


class ImportViewSet(ScopedViewSet):
    """Rows are created by importing a key (``import_serializer_class``), changed only in the
    fields people name, and deleted through ``delete_service`` (which also cleans the keyring)."""

    import_serializer_class = None
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_serializer_class(self):
        if self.action == "create":
            return self.import_serializer_class
        return super().get_serializer_class()

    def perform_destroy(self, instance):
        self.delete_service(instance)

    def delete_service(self, instance):
        instance.delete()


class OpenPGPKeyFilter(django_filters.FilterSet):
    domain = domain_name("mailbox__domain__name")

    class Meta:
        model = OpenPGPKey
        fields = ["domain", "published"]


class OpenPGPKeyViewSet(ImportViewSet):
    queryset = OpenPGPKey.objects.all()
    serializer_class = serializers.OpenPGPKeySerializer
    filterset_class = OpenPGPKeyFilter
    search_fields = ["mailbox__local_part", "mailbox__domain__name", "fingerprint"]
    import_serializer_class = serializers.OpenPGPKeyUploadSerializer
    owner_only = False  # managers for their domains, mailbox owners for their own mailbox
    select_related = ("mailbox__domain",)

    @extend_schema(
        request=serializers.OpenPGPKeyGenerateSerializer,
        responses={201: serializers.GeneratedKeySerializer},
    )
    @action(detail=False, methods=["post"])
    def generate(self, request):
        """Make a key for a mailbox and publish it; the private key and the revocation
        certificate are in this answer only (Mailgate does not keep them)."""
        arguments = serializers.OpenPGPKeyGenerateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        arguments.is_valid(raise_exception=True)
        generated = services.openpgp_key_generate(**arguments.validated_data)
        generated.key.private_key = generated.private_key
        generated.key.revocation_certificate = generated.revocation_certificate
        answer = serializers.GeneratedKeySerializer(generated.key, context={"request": request})
        response = Response(answer.data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class TrustAnchorViewSet(ImportViewSet):
    queryset = TrustAnchor.objects.all()
    serializer_class = serializers.TrustAnchorSerializer
    import_serializer_class = serializers.TrustAnchorImportSerializer

    def delete_service(self, instance):
        services.trust_anchor_delete(anchor=instance)

    @extend_schema(request=None, responses={201: serializers.TrustAnchorSerializer})
    @action(detail=False, methods=["post"], url_path="fetch-protonca")
    def fetch_protonca(self, request):
        """Fetch ProtonCA's key by WKD, check it against the pinned fingerprint, trust it."""
        if not acts_as_owner(request.user):
            raise PermissionDenied("Only the owner can trust a certification authority.")
        anchor = services.trust_anchor_fetch_protonca()
        return Response(
            serializers.TrustAnchorSerializer(anchor).data, status=status.HTTP_201_CREATED
        )


class ContactKeyViewSet(ImportViewSet):
    queryset = ContactKey.objects.all()
    serializer_class = serializers.ContactKeySerializer
    import_serializer_class = serializers.ContactKeyImportSerializer

    def delete_service(self, instance):
        services.contact_key_delete(contact=instance)


class CertificationAlertViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Alerts are read; they are made by checking the contact keys (``check``)."""

    queryset = CertificationAlert.objects.all()
    serializer_class = serializers.CertificationAlertSerializer

    def get_queryset(self):
        alerts = CertificationAlert.objects.visible_to(self.request.user)
        return alerts.select_related("contact_key", "trust_anchor")

    @extend_schema(request=None, responses={202: None})
    @action(detail=False, methods=["post"])
    def check(self, request):
        """Queue a check of every contact key's certifications (the periodic task's work)."""
        services.certifications_check_queue(user=request.user)
        return Response(status=status.HTTP_202_ACCEPTED)
