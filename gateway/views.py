import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateway import client_setup, selectors, services
from gateway.forms import (
    ApiTokenForm,
    AppPasswordForm,
    MailboxPasswordForm,
    MailboxSettingsForm,
    ReauthenticationForm,
    add_refusal,
)
from gateway.models import ApiToken, AppPassword, Domain, Mailbox
from gateway.totp import base32_secret, qr_svg, verify_new_device
from gateway.validators import to_address, to_ascii_domain


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_password(request, pk):
    mailbox = get_object_or_404(Mailbox.objects.visible_to(request.user), pk=pk)
    form = MailboxPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.mailbox_set_password(mailbox=mailbox, password=form.cleaned_data["password"])
        messages.success(request, f"The password of {mailbox} was changed.")
        return redirect("hosts:dashboard")
    return render(request, "gateway/mailbox_password.html", {"form": form, "mailbox": mailbox})


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_settings(request, pk):
    """Forwarding, auto-reply, spam and logins of a mailbox, for its user and its managers."""
    mailbox = get_object_or_404(Mailbox.objects.visible_to(request.user), pk=pk)
    form = MailboxSettingsForm(request.POST or None, instance=mailbox)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"The settings of {mailbox} were saved.")
        return redirect("gateway:mailbox-settings", pk=mailbox.pk)
    return render(request, "gateway/mailbox_settings.html", {"form": form, "mailbox": mailbox})


@login_required
@require_http_methods(["GET", "POST"])
def app_passwords(request, pk):
    """A mailbox's device passwords: make one for a device (shown once), see when each was last
    used, revoke."""
    mailbox = get_object_or_404(Mailbox.objects.visible_to(request.user), pk=pk)
    rows = AppPassword.objects.manageable_by(request.user).filter(mailbox=mailbox)
    if request.method == "POST" and "revoke" in request.POST:
        revoked = request.POST["revoke"]
        if not revoked.isdigit():  # the page only ever sends an id
            return HttpResponseBadRequest("Choose the device password to revoke by its id.")
        rows.filter(pk=revoked).delete()
        messages.success(request, "The device password is revoked.")
        return redirect("gateway:app-passwords", pk=mailbox.pk)
    form = AppPasswordForm(request.POST or None, instance=AppPassword(mailbox=mailbox))
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            _, created = AppPassword.issue(mailbox=mailbox, name=form.cleaned_data["name"])
        except ValidationError as exc:
            add_refusal(form, exc)
        else:
            form = AppPasswordForm()
    context = {"mailbox": mailbox, "rows": rows, "form": form, "created": created}
    return render(request, "gateway/app_passwords.html", context)


@login_required
@require_GET
def mailbox_phone(request, pk):
    """Set up a phone: the servers to type in, and a QR code that opens the profile's download."""
    mailbox = get_object_or_404(
        Mailbox.objects.visible_to(request.user).select_related("domain"), pk=pk
    )
    profile = request.build_absolute_uri(reverse("gateway:mailbox-profile", args=[mailbox.pk]))
    servers = [
        ("Incoming (IMAP)", client_setup.IMAPS_PORT, "SSL/TLS"),
        ("Outgoing (SMTP)", client_setup.SUBMISSIONS_PORT, "SSL/TLS"),
        ("Outgoing (SMTP), if 465 is blocked", client_setup.SUBMISSION_PORT, "STARTTLS"),
    ]
    context = {
        "mailbox": mailbox,
        "servers": servers,
        "profile_url": profile,
        "qr_svg": qr_svg(profile),
    }
    return render(request, "gateway/mailbox_phone.html", context)


@login_required
@require_GET
def mailbox_profile(request, pk):
    """The mailbox's Apple configuration profile (.mobileconfig)."""
    mailbox = get_object_or_404(
        Mailbox.objects.visible_to(request.user).select_related("domain"), pk=pk
    )
    response = HttpResponse(
        client_setup.mobileconfig(client_setup.Account.of(mailbox)),
        content_type="application/x-apple-aspen-config",
    )
    response["Content-Disposition"] = f'attachment; filename="{mailbox.local_part}.mobileconfig"'
    return response


@require_GET
def autoconfig(request):
    """Thunderbird's autoconfig, public as mail programs ask it: for ``?emailaddress=`` or the
    ``autoconfig.<domain>`` name it was asked on; 404 for a domain not served here."""
    domain = _served_domain(request.GET.get("emailaddress") or request.get_host())
    xml = client_setup.autoconfig(domain=domain.name, mail_hostname=domain.mail_hostname)
    return HttpResponse(xml, content_type="application/xml")


_EMAIL_ADDRESS = re.compile(rb"<EMailAddress>([^<]{1,320})</EMailAddress>")


@csrf_exempt
@require_http_methods(["POST"])
def autodiscover(request):
    """Outlook's autodiscover (POX), public as Outlook asks it: the address's servers."""
    found = _EMAIL_ADDRESS.search(request.body[:10_000])
    try:
        address = to_address(found.group(1).decode()) if found else ""
    except (ValidationError, UnicodeDecodeError):
        address = ""
    if not address:
        return HttpResponseBadRequest("Send an autodiscover request with an EMailAddress.")
    domain = _served_domain(address)
    account = client_setup.Account(address, "", domain.mail_hostname)
    return HttpResponse(client_setup.autodiscover(account), content_type="application/xml")


def _served_domain(text: str) -> Domain:
    """The enabled domain of an address or of an ``autoconfig.``/``autodiscover.`` host name."""
    name = text.rpartition("@")[2].split(":")[0]  # an address, or a host with its port
    name = name.removeprefix("autoconfig.").removeprefix("autodiscover.")
    try:
        return Domain.objects.get(enabled=True, name=to_ascii_domain(name))
    except (ValidationError, Domain.DoesNotExist):
        raise Http404("No mail domain of that name is served here.") from None


@login_required
@require_http_methods(["GET", "POST"])
def security(request):
    """Set up (or remove) a TOTP authenticator for the signed-in account."""
    devices = TOTPDevice.objects.devices_for_user(request.user, confirmed=None)
    confirmed = [device for device in devices if device.confirmed]
    removing = request.method == "POST" and request.POST.get("action") == "remove"
    remove_form = ReauthenticationForm(request.POST if removing else None, request=request)
    if removing and remove_form.is_valid():
        TOTPDevice.objects.filter(user=request.user).delete()
        messages.success(request, "Two-factor authentication is off.")
        return redirect("gateway:security")
    pending = next((d for d in devices if not d.confirmed), None)
    if not confirmed and pending is None:
        pending = TOTPDevice.objects.create(
            user=request.user, name="authenticator", confirmed=False
        )
    if request.method == "POST" and pending is not None:
        if verify_new_device(request, pending, request.POST.get("token", "")):
            messages.success(request, "Two-factor authentication is on.")
            return redirect("gateway:security")
        messages.error(request, "That code does not match; check the clock of your phone.")
    context = {"enabled": bool(confirmed), "pending": pending, "form": remove_form}
    if pending is not None:
        context["qr_svg"] = qr_svg(pending.config_url)
        context["secret"] = base32_secret(pending)
    return render(request, "gateway/security.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    """The signed-in user's API tokens: create one (shown once), see when each was used,
    revoke."""
    tokens = ApiToken.objects.filter(user=request.user).prefetch_related("domains")
    form = ApiTokenForm(request.POST or None, request=request)
    if request.method == "POST" and "revoke" in request.POST:
        try:
            revoked = int(request.POST["revoke"])
        except ValueError:  # the page only ever sends a token's id
            return HttpResponseBadRequest("Choose the token to revoke by its id.")
        tokens.filter(pk=revoked).delete()
        messages.success(request, "The token is revoked.")
        return redirect("gateway:api-tokens")
    created = None
    if request.method == "POST" and form.is_valid():
        _, created = ApiToken.issue(
            user=request.user,
            name=form.cleaned_data["name"],
            domains=form.cleaned_data["domains"],
            read_only=form.cleaned_data["read_only"],
        )
        form = ApiTokenForm(request=request)
    context = {"tokens": tokens, "form": form, "created": created}
    return render(request, "gateway/api_tokens.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def status(request):
    """Every status item the user may see, grouped, with the fix for each and the history of
    colour changes; "Check now" queues the probes."""
    if request.method == "POST":
        try:
            services.status_refresh_queue(user=request.user)
        except services.TooSoon as exc:
            messages.info(request, str(exc))
        else:
            messages.success(request, "Checking now: reload this page in a minute for the results.")
        return redirect("gateway:status")
    overview = selectors.status_overview(
        request.user, page=request.GET.get("page", 1), show_green=request.GET.get("all") == "1"
    )
    return render(request, "gateway/status.html", overview)
