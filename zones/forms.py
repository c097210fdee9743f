from django import forms

from gateway.forms import LinesField, PanelForm, SecretField
from gateway.scoping import acts_as_owner
from zones import services
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
        fields = PushTarget.EDITABLE_FIELDS

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        if not acts_as_owner(user):
            for name in services.PUSH_TARGET_OWNER_FIELDS:
                self.fields[name].disabled = True
                self.fields[name].help_text += " Only the owner changes it."

    def clean(self):
        cleaned = super().clean()
        services.push_target_check_change(target=self.instance, values=cleaned, user=self.user)
        return cleaned


class DkimGenerateForm(forms.Form):
    selector = forms.CharField(
        max_length=63,
        required=False,
        validators=[validate_selector],
        help_text="Empty: dkim for the first key, dkim<year><month> for the next.",
    )
