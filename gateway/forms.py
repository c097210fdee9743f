"""Form building blocks shared by every app: secrets that are never shown again, choices
limited to what the user may manage, and the mail-directory forms."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django_otp.forms import OTPAuthenticationFormMixin

from gateway import passwords, services, totp
from gateway.models import Alias, ApiToken, AppPassword, Domain, Mailbox
from gateway.scoping import choices_for
from gateway.validators import to_local_part

SECRET_SET = "Set. Leave empty to keep it, or enter a new value to replace it."  # noqa: S105 (help text, not a password)
SECRET_UNSET = "Not set."  # noqa: S105


def add_refusal(form: forms.BaseForm, refusal: ValidationError) -> None:
    """Show a refusal that came on saving (from a service or the model) beside the field it
    names, or above the form where the form has no such field: the standard aliases a new
    domain creates can be refused for their destinations, which the page does not ask for."""
    if not hasattr(refusal, "error_dict"):
        form.add_error(None, refusal)
        return
    for name, errors in refusal.error_dict.items():
        form.add_error(name if name in form.fields else NON_FIELD_ERRORS, errors)


class SecretField(forms.CharField):
    """A secret input that never renders the stored (or just typed) value back."""

    widget = forms.PasswordInput(render_value=False)

    def __init__(self, *, max_length=None, **kwargs):
        kwargs["required"] = False
        kwargs.pop("empty_value", None)
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        return ""


class MultilineSecretField(SecretField):
    widget = forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"})


class PanelForm(forms.ModelForm):
    """A model form for the panel: secrets say "set, replace" and keep their value when left
    empty; choices of related rows are limited to those the user may see."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        for name, field in self.fields.items():
            if isinstance(field, SecretField):
                stored = getattr(self.instance, name, "")
                status = SECRET_SET if stored and self.instance.pk else SECRET_UNSET
                field.help_text = f"{status} {field.help_text}".strip()
            queryset = getattr(field, "queryset", None)
            if queryset is not None:
                field.queryset = choices_for(queryset, user)

    def clean(self):
        cleaned = super().clean()
        for name, field in self.fields.items():
            if isinstance(field, SecretField) and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name, "")
        return cleaned


class PasswordPairMixin(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput,
        required=False,
        strip=False,
        help_text=f"At least {passwords.MIN_LENGTH} characters and at most "
        f"{passwords.MAX_BYTES} bytes (bcrypt's limit).",
    )
    password_again = forms.CharField(widget=forms.PasswordInput, required=False, strip=False)

    def clean_password(self):
        password = self.cleaned_data["password"]
        if password:
            passwords.validate_mailbox_password(password)
        return password

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return cleaned


class DomainCreateForm(PanelForm):
    """A new domain through services.domain_create, which refuses both or neither of
    aliases_to and first_mailbox, and a first mailbox without a good password, on saving; the
    page shows each refusal beside its field (gateway.crud)."""

    aliases_to = forms.ModelChoiceField(
        Mailbox.objects.all(),
        required=False,
        label="Standard aliases go to",
        help_text="abuse@, hostmaster@, noc@, postmaster@, security@ and webmaster@ (RFC 2142) "
        "deliver to this mailbox.",
    )
    first_mailbox = forms.CharField(
        required=False,
        max_length=64,
        help_text="…or create this mailbox in the new domain and deliver them there.",
    )
    first_mailbox_password = forms.CharField(
        widget=forms.PasswordInput, required=False, strip=False
    )

    class Meta:
        model = Domain
        # The page names a new domain's managers afterwards, on its edit page (DomainForm).
        fields = [name for name in Domain.EDITABLE_FIELDS if name != "managers"]

    def clean_first_mailbox(self):
        local_part = self.cleaned_data["first_mailbox"]
        return to_local_part(local_part) if local_part else local_part

    def save(self, commit=True):
        return services.domain_create(
            name=self.instance.name,
            mail_hostname=self.instance.mail_hostname,
            enabled=self.instance.enabled,
            aliases_to=self.cleaned_data["aliases_to"],
            first_mailbox=self.cleaned_data["first_mailbox"],
            first_mailbox_password=self.cleaned_data["first_mailbox_password"],
        )


class DomainForm(PanelForm):
    class Meta:
        model = Domain
        fields = Domain.EDITABLE_FIELDS


class AddressForm(PanelForm):
    """A mailbox or alias, saved through ``services.address_save``: losing a race for its
    address raises the ValidationError the page shows (``gateway.crud``)."""

    def save(self, commit=True):
        services.address_save(self.instance)
        return self.instance


class LinesField(forms.CharField):
    """One item per line in the browser (addresses, networks), a list in the model."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
MAILBOX_WIDGETS = {"autoreply_start": DATE_WIDGET, "autoreply_end": DATE_WIDGET}


class MailboxForm(PasswordPairMixin, AddressForm):
    forward_to = LinesField(
        required=False, help_text=Mailbox._meta.get_field("forward_to").help_text
    )

    class Meta:
        model = Mailbox
        fields = Mailbox.EDITABLE_FIELDS
        widgets = MAILBOX_WIDGETS

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        if not user.is_superuser:
            del self.fields["owner"]  # only the owner sees the list of panel accounts

    def clean(self):
        cleaned = super().clean()
        services.mailbox_require_password(mailbox=self.instance, password=cleaned.get("password"))
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        if self.cleaned_data.get("password"):
            self.instance.set_password(self.cleaned_data["password"])


class MailboxSettingsForm(forms.ModelForm):
    """What a mailbox's own user changes: forwarding, auto-reply, spam and which protocols
    may log in (``Mailbox.SETTINGS_FIELDS``)."""

    forward_to = MailboxForm.base_fields["forward_to"]

    class Meta:
        model = Mailbox
        fields = Mailbox.SETTINGS_FIELDS
        widgets = MAILBOX_WIDGETS


class AppPasswordForm(forms.ModelForm):
    """The name of a new device password (the password itself is made by Mailgate)."""

    class Meta:
        model = AppPassword
        fields = ["name"]


class MailboxPasswordForm(PasswordPairMixin, forms.Form):
    """A mailbox owner changes their own mailbox password."""

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("password"):
            self.add_error("password", "Enter the new password.")
        return cleaned


class AliasForm(AddressForm):
    destinations = LinesField(help_text=Alias._meta.get_field("destinations").help_text)

    class Meta:
        model = Alias
        fields = Alias.EDITABLE_FIELDS


class LoginForm(OTPAuthenticationFormMixin, AuthenticationForm):
    """User name and password, plus the authenticator code for accounts with TOTP turned on."""

    otp_device = forms.CharField(required=False, widget=forms.HiddenInput)
    otp_challenge = forms.CharField(required=False, widget=forms.HiddenInput)
    otp_token = forms.CharField(
        required=False,
        label="Authenticator code",
        help_text="Only if you turned on two-factor authentication.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        self.cleaned_data = super().clean()
        user = self.get_user()
        if user is not None and self._chosen_device(user) is not None:
            self.clean_otp(user)
        return self.cleaned_data

    def _chosen_device(self, user):
        return totp.authenticator(user)

    def _update_form(self, user):
        """django-otp would render the password back into the page; never do that."""


class ReauthenticationForm(forms.Form):
    """The signed-in user's password or a current authenticator code, asked again before
    turning two-factor off or making an API token: a session left open is not enough."""

    password = forms.CharField(
        label="Your password", widget=forms.PasswordInput, required=False, strip=False
    )
    otp_token = forms.CharField(
        required=False,
        label="…or a code from your authenticator",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self):
        cleaned = super().clean()
        totp.reauthenticate(
            self.request,
            password=cleaned.get("password", ""),
            otp_token=cleaned.get("otp_token", ""),
        )
        return cleaned


class ApiTokenForm(ReauthenticationForm, forms.ModelForm):
    """A new API token, optionally limited to some of the user's domains and to reading."""

    class Meta:
        model = ApiToken
        fields = ApiToken.EDITABLE_FIELDS
        widgets = {"domains": forms.CheckboxSelectMultiple}

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        self.fields["domains"].queryset = Domain.objects.visible_to(request.user)
