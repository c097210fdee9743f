from rest_framework import serializers

from certs.models import Certificate, Issuance
from gateway.status import Colour

# What an issuance says; its key is never among it.
ISSUANCE_FIELDS = [
    "id",
    "trigger",
    "names",
    "started_at",
    "finished_at",
    "outcome",
    "message",
    "serial",
    "issuer",
    "not_before",
    "not_after",
]


class IssuanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Issuance
        fields = ISSUANCE_FIELDS
        read_only_fields = ISSUANCE_FIELDS


class CurrentSerializer(serializers.ModelSerializer):
    """The certificate the host presents, with its chain (public)."""

    class Meta:
        model = Issuance
        fields = [*ISSUANCE_FIELDS, "fullchain"]
        read_only_fields = fields


class StateSerializer(serializers.Serializer):
    """How the status page judges the certificate now."""

    colour = serializers.ChoiceField(choices=Colour.choices)
    message = serializers.CharField()
    fix = serializers.CharField(help_text="What to do about it; empty when green.")


class CertificateSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    state = StateSerializer(read_only=True)
    current = IssuanceSerializer(source="current_issuance", read_only=True, allow_null=True)
    latest = IssuanceSerializer(source="latest_issuance", read_only=True, allow_null=True)

    class Meta:
        model = Certificate
        fields = [
            "id",
            "host",
            "host_name",
            "purpose",
            "name",
            "names",
            "force_renewal",
            "state",
            "current",
            "latest",
        ]
        read_only_fields = fields


class CertificateDetailSerializer(CertificateSerializer):
    current = CurrentSerializer(source="current_issuance", read_only=True, allow_null=True)
    history = IssuanceSerializer(many=True, read_only=True)

    class Meta(CertificateSerializer.Meta):
        fields = [*CertificateSerializer.Meta.fields, "history"]
        read_only_fields = fields
