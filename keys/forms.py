"""Forms of the keys pages. A key arrives as a file (armored or binary) or pasted text; the
services read it with gpg, so the import forms call them while cleaning and show gpg's refusal
next to the field."""

from django import forms
from django.core.exceptions import ValidationError

from gateway.forms import PanelForm
from gateway.models import Mailbox
from keys import services
from keys.models import ContactKey, OpenPGPKey, TrustAnchor


class KeySourceMixin(forms.Form):
    key_file = forms.FileField(
        required=False, label="Key file", help_text="An .asc (armored) or .gpg (binary) file."
    )
    key_text = forms.CharField(
        required=False,
        label="…or paste it",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="-----BEGIN PGP PUBLIC KEY BLOCK----- …",
    )

    def key_data(self) -> bytes:
        upload = self.cleaned_data.get("key_file")
        if upload is not None:
            if upload.size > services.MAX_KEY_BYTES:
                raise ValidationError(f"A key file is at most {services.MAX_KEY_BYTES} bytes.")
            return upload.read()
        return (self.cleaned_data.get("key_text") or "").encode()

    def run_service(self, call) -> None:
        """Run ``call`` once the form is otherwise valid; its refusal becomes the key's error."""
        if self.errors:
            return
        try:
            self.instance = call()
        except ValidationError as exc:
            self.add_error("key_file", exc.messages)  # a model's field errors included


class OpenPGPKeyUploadForm(KeySourceMixin, PanelForm):
    """Publish a mailbox's public key."""

    class Meta:
        model = OpenPGPKey
        fields = ["mailbox"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mailbox"):
            self.run_service(
                lambda: services.openpgp_key_upload(
                    mailbox=cleaned["mailbox"], key_data=self.key_data()
                )
            )
        return cleaned


class OpenPGPKeyForm(PanelForm):
    class Meta:
        model = OpenPGPKey
        fields = OpenPGPKey.EDITABLE_FIELDS


class OpenPGPKeyGenerateForm(forms.Form):
    mailbox = forms.ModelChoiceField(Mailbox.objects.none())
    passphrase = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput,
        help_text="Protects the private key you download. Leave empty to set one in your mail "
        "client after importing it. Mailgate does not keep it.",
    )
    passphrase_again = forms.CharField(required=False, strip=False, widget=forms.PasswordInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mailbox"].queryset = Mailbox.objects.visible_to(user).select_related("domain")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("passphrase") != cleaned.get("passphrase_again"):
            self.add_error("passphrase_again", "The two passphrases differ.")
        return cleaned


class TrustAnchorImportForm(KeySourceMixin, PanelForm):
    """Trust ProtonCA: its key from a file, or fetched by WKD."""

    fetch = forms.BooleanField(
        required=False,
        label="Fetch ProtonCA's key by WKD (openpgp-ca@proton.me) instead",
    )

    class Meta:
        model = TrustAnchor
        fields = ["name"]

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("name") or "ProtonCA"
        if cleaned.get("fetch"):
            self.run_service(lambda: _fetch_protonca(name))
        else:
            self.run_service(
                lambda: services.trust_anchor_import(key_data=self.key_data(), name=name)
            )
        return cleaned


def _fetch_protonca(name: str) -> TrustAnchor:
    anchor = services.trust_anchor_fetch_protonca()
    if anchor.name != name:
        anchor.name = name
        anchor.save(update_fields=["name"])
    return anchor


class TrustAnchorForm(PanelForm):
    class Meta:
        model = TrustAnchor
        fields = TrustAnchor.EDITABLE_FIELDS


class ContactKeyImportForm(KeySourceMixin, PanelForm):
    """Add a correspondent's key: from a file, pasted, or fetched by WKD."""

    address = forms.EmailField(
        required=False,
        label="…or fetch it by WKD for",
        help_text="e.g. someone@proton.me; fetching again picks up renewed certifications.",
    )

    class Meta:
        model = ContactKey
        fields = ["label"]

    def clean(self):
        cleaned = super().clean()
        label, address = cleaned.get("label", ""), cleaned.get("address")
        if address:
            self.run_service(lambda: services.contact_key_fetch(address=address, label=label))
        else:
            self.run_service(
                lambda: services.contact_key_import(key_data=self.key_data(), label=label)
            )
        return cleaned


class ContactKeyForm(PanelForm):
    class Meta:
        model = ContactKey
        fields = ContactKey.EDITABLE_FIELDS
