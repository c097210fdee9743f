"""Certificates API (owner only): every certificate with its state and the one the host
presents, one certificate's history, and renewals, which run in the background."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from certs import selectors, services
from certs.api import serializers
from certs.choices import Trigger
from certs.models import Certificate
from certs.probes import certificate_finding
from gateway.scoping import acts_as_owner


def _annotated(certificate: Certificate, history, now) -> Certificate:
    """The certificate with what its serializers read: its state, current and latest issuance."""
    certificate.state = certificate_finding(certificate, history, now)
    certificate.current_issuance = selectors.current_of(history)
    certificate.latest_issuance = history[0] if history else None
    certificate.history = history
    return certificate


class CertificateViewSet(viewsets.ReadOnlyModelViewSet):
    """The certificates Mailgate gets over ACME; keys are never part of any answer."""

    serializer_class = serializers.CertificateSerializer

    def get_queryset(self):
        if not acts_as_owner(self.request.user):
            return Certificate.objects.none()
        return Certificate.objects.select_related("host").order_by("host__name", "name")

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.CertificateDetailSerializer
        return serializers.CertificateSerializer

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        histories = selectors.histories(page)
        now = timezone.now()
        rows = [_annotated(c, histories.get(c.pk, []), now) for c in page]
        return self.get_paginated_response(self.get_serializer(rows, many=True).data)

    def retrieve(self, request, pk=None):
        certificate = self.get_object()
        history = selectors.history(certificate)
        row = _annotated(certificate, history, timezone.now())
        return Response(self.get_serializer(row).data)

    @extend_schema(request=None, responses={202: serializers.CertificateSerializer})
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        """Renew the certificate now in the background, however long it has left; its new
        issuance shows in ``latest`` (and is deployed) when it arrives."""
        certificate = self.get_object()
        services.certificate_renewal_request(certificate=certificate, trigger=Trigger.API)
        certificate.refresh_from_db()
        row = _annotated(certificate, selectors.history(certificate), timezone.now())
        data = serializers.CertificateSerializer(row).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None})
    @action(detail=False, methods=["post"], url_path="renew-due")
    def renew_due(self, request):
        """Add every certificate the setup needs now and renew those that are due, in the
        background (as Celery beat does every 12 hours)."""
        if not acts_as_owner(request.user):
            raise exceptions.PermissionDenied("Only the owner renews certificates.")
        services.certificates_renewal_request(trigger=Trigger.API)
        return Response(status=status.HTTP_202_ACCEPTED)
