from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from keys import services
from keys.forms import OpenPGPKeyGenerateForm
from keys.models import CertificationAlert, OpenPGPKey


@login_required
def openpgp_key_detail(request, pk):
    key = get_object_or_404(
        OpenPGPKey.objects.visible_to(request.user).select_related("mailbox__domain"), pk=pk
    )
    return render(request, "keys/openpgpkey_detail.html", {"key": key})


@login_required
@require_http_methods(["GET", "POST"])
def openpgp_key_generate(request):
    """Make a key for a mailbox; the answer to the POST is the private key itself, offered
    once as a download (Mailgate keeps only the public key)."""
    form = OpenPGPKeyGenerateForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        generated = services.openpgp_key_generate(
            mailbox=form.cleaned_data["mailbox"], passphrase=form.cleaned_data["passphrase"]
        )
        return _secret_download(generated)
    return render(request, "keys/openpgpkey_generate.html", {"form": form})


def _secret_download(generated: services.GeneratedKey) -> HttpResponse:
    # gpg --import reads the key from this file and skips the revocation certificate, whose
    # armor line gpg writes with a leading ":" precisely so that it is not imported by mistake.
    body = f"{generated.private_key}\n{generated.revocation_certificate}"
    response = HttpResponse(body, content_type="application/pgp-keys")
    name = f"{generated.key.mailbox.address}-{generated.key.fingerprint[-16:]}-secret.asc"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def certification_alerts(request):
    alerts = CertificationAlert.objects.visible_to(request.user).select_related(
        "contact_key", "trust_anchor"
    )
    return render(request, "keys/certification_alerts.html", {"alerts": alerts})


@login_required
@require_POST
def certifications_check(request):
    if not request.user.is_superuser:
        raise PermissionDenied
    alerts = services.certifications_check()
    messages.success(request, f"Checked the contact keys: {len(alerts)} alert(s).")
    return redirect("keys:certification-alerts")
