"""Keys in the API. A key is sent as ``public_key`` (armored text, or base64 of the binary key)
or as a multipart ``key_file``; the services read it with gpg and refuse it with a 400."""

import base64
import binascii

from rest_framework import serializers

from gateway.api.base import ModelCleanSerializer, ScopedChoicesMixin
from gateway.models import Mailbox
from keys import services
from keys.models import CertificationAlert, ContactKey, OpenPGPKey, TrustAnchor

ARMOR = "-----BEGIN PGP "


class KeySourceSerializer(serializers.Serializer):
    public_key = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        help_text="The public key: ASCII-armored, or the binary key in base64.",
    )
    key_file = serializers.FileField(
        write_only=True, required=False, help_text="…or the key as a file (multipart)."
    )

    def key_data(self) -> bytes:
        upload = self.validated_data.get("key_file")
        if upload is not None:
            return upload.read(services.MAX_KEY_BYTES + 1)
        text = self.validated_data.get("public_key", "")
        if not text.strip() or ARMOR in text:
            return text.encode()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError(
                {"public_key": "Send an ASCII-armored key or the binary key in base64."}
            ) from None


class OpenPGPKeySerializer(ModelCleanSerializer):
    address = serializers.CharField(source="mailbox.address", read_only=True)
    wkd_status = serializers.ChoiceField(
        choices=["published", "not-published", "expired"], read_only=True
    )
    wkd_url = serializers.CharField(read_only=True)
    wkd_direct_url = serializers.CharField(read_only=True)
    autocrypt_header = serializers.CharField(read_only=True)

    class Meta:
        model = OpenPGPKey
        fields = [
            "id",
            "mailbox",
            "address",
            "fingerprint",
            "user_id",
            "public_key",
            "expires_at",
            *OpenPGPKey.EDITABLE_FIELDS,
            "wkd_status",
            "wkd_url",
            "wkd_direct_url",
            "autocrypt_header",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["mailbox"]


class OpenPGPKeyUploadSerializer(ScopedChoicesMixin, KeySourceSerializer):
    """Publish a public key for a mailbox the caller owns or manages."""

    mailbox = serializers.PrimaryKeyRelatedField(queryset=Mailbox.objects.all())

    def create(self, validated_data):
        return services.openpgp_key_upload(
            mailbox=validated_data["mailbox"], key_data=self.key_data()
        )

    def to_representation(self, instance):
        return OpenPGPKeySerializer(instance, context=self.context).data


class OpenPGPKeyGenerateSerializer(ScopedChoicesMixin, serializers.Serializer):
    mailbox = serializers.PrimaryKeyRelatedField(queryset=Mailbox.objects.all())
    passphrase = serializers.CharField(
        write_only=True,
        required=False,
        default="",
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Protects the returned private key; Mailgate does not keep it.",
    )


class GeneratedKeySerializer(OpenPGPKeySerializer):
    """The new key, with its private key and revocation certificate: in this answer only."""

    private_key = serializers.CharField(read_only=True)
    revocation_certificate = serializers.CharField(read_only=True)

    class Meta(OpenPGPKeySerializer.Meta):
        fields = [*OpenPGPKeySerializer.Meta.fields, "private_key", "revocation_certificate"]


class TrustAnchorSerializer(ModelCleanSerializer):
    class Meta:
        model = TrustAnchor
        fields = [
            "id",
            *TrustAnchor.EDITABLE_FIELDS,
            "fingerprint",
            "user_id",
            "public_key",
            "expires_at",
            "created_at",
        ]


class TrustAnchorImportSerializer(KeySourceSerializer):
    """Import ProtonCA's key (it must match ``MAILGATE_PROTONCA_FINGERPRINT``)."""

    name = serializers.CharField(default="ProtonCA", max_length=100)

    def create(self, validated_data):
        return services.trust_anchor_import(key_data=self.key_data(), name=validated_data["name"])

    def to_representation(self, instance):
        return TrustAnchorSerializer(instance, context=self.context).data


class ContactKeySerializer(ModelCleanSerializer):
    validity_display = serializers.CharField(source="get_validity_display", read_only=True)

    class Meta:
        model = ContactKey
        fields = [
            "id",
            *ContactKey.EDITABLE_FIELDS,
            "fingerprint",
            "user_ids",
            "validity",
            "validity_display",
            "expires_at",
            "checked_at",
            "public_key",
            "created_at",
        ]


class ContactKeyImportSerializer(KeySourceSerializer):
    """Import a correspondent's key, or fetch it by WKD with ``address``."""

    label = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    address = serializers.EmailField(required=False, help_text="Fetch the key by WKD instead.")

    def create(self, validated_data):
        label = validated_data["label"]
        if validated_data.get("address"):
            return services.contact_key_fetch(address=validated_data["address"], label=label)
        return services.contact_key_import(key_data=self.key_data(), label=label)

    def to_representation(self, instance):
        return ContactKeySerializer(instance, context=self.context).data


class CertificationAlertSerializer(serializers.ModelSerializer):
    contact_fingerprint = serializers.CharField(source="contact_key.fingerprint", read_only=True)
    trust_anchor_name = serializers.CharField(source="trust_anchor.name", read_only=True)

    class Meta:
        model = CertificationAlert
        fields = [
            "id",
            "contact_key",
            "contact_fingerprint",
            "trust_anchor",
            "trust_anchor_name",
            "user_id",
            "kind",
            "expires_at",
            "checked_at",
        ]
