from gateway.forms import PanelForm
from keys.models import OpenPGPKey


class OpenPGPKeyForm(PanelForm):
    class Meta:
        model = OpenPGPKey
        fields = ["mailbox", "fingerprint", "public_key", "expires_at"]
