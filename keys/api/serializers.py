from gateway.api.base import ModelCleanSerializer
from keys.models import OpenPGPKey


class OpenPGPKeySerializer(ModelCleanSerializer):
    class Meta:
        model = OpenPGPKey
        fields = ["id", "mailbox", "fingerprint", "public_key", "expires_at", "created_at"]
