from django import forms

from gateway.forms import LinesField, PanelForm, SecretField
from zones.models import PushTarget, ZoneSettings, validate_selector


class ZoneSettingsForm(PanelForm):
    nameservers = LinesField(
        label="Name servers",
        required=False,
        help_text=ZoneSettings._meta.get_field("nameservers").help_text,
    )

    class Meta:
        model = ZoneSettings
        fields = ZoneSettings.EDITABLE_FIELDS
        widgets = {"tlsa_certificate": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})}


class PushTargetForm(PanelForm):
    tsig_secret = SecretField(
        label="TSIG secret", help_text=PushTarget._meta.get_field("tsig_secret").help_text
    )
    provider_token = SecretField(
        label="Provider token", help_text=PushTarget._meta.get_field("provider_token").help_text
    )

    class Meta:
        model = PushTarget
        fields = [
            "kind",
            "server",
            "port",
            "tsig_key_name",
            "tsig_algorithm",
            "tsig_secret",
            "provider",
            "provider_username",
            "provider_token",
        ]


class DkimGenerateForm(forms.Form):
    selector = forms.CharField(
        max_length=63,
        required=False,
        validators=[validate_selector],
        help_text="Empty: dkim for the first key, dkim<year><month> for the next.",
    )
