"""Certificate pages (owner only): every certificate Mailgate gets with its state as the status
page judges it, one certificate's history and public chain, and "Renew now"."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from certs import selectors, services
from certs.choices import Trigger
from certs.models import Certificate
from certs.probes import certificate_finding
from gateway.scoping import owner_required


def _row(certificate, history, now) -> dict:
    return {
        "certificate": certificate,
        "current": selectors.current_of(history),
        "latest": history[0] if history else None,
        "finding": certificate_finding(certificate, history, now),
    }


@owner_required
def certificate_list(request):
    now = timezone.now()
    rows = [_row(*item, now) for item in selectors.certificates_with_history()]
    context = {
        "rows": rows,
        "unlisted": selectors.certificates_unlisted(),
        "renew_days": settings.MAILGATE_ACME_RENEW_DAYS,
    }
    return render(request, "certs/certificate_list.html", context)


@owner_required
def certificate_detail(request, pk):
    certificate = get_object_or_404(Certificate.objects.select_related("host"), pk=pk)
    history = selectors.history(certificate)
    context = {**_row(certificate, history, timezone.now()), "history": history}
    return render(request, "certs/certificate_detail.html", context)


@owner_required
def certificate_chain(request, pk):
    """The certificate the host presents, with its chain (public; the key never leaves)."""
    certificate = get_object_or_404(Certificate, pk=pk)
    current = selectors.current_of(selectors.history(certificate))
    if current is None:
        messages.error(request, f"{certificate.name} has not been issued yet.")
        return redirect("certs:certificate-detail", pk=pk)
    response = HttpResponse(current.fullchain, content_type="application/pem-certificate-chain")
    response["Content-Disposition"] = f'attachment; filename="{certificate.name}.pem"'
    return response


@owner_required
@require_POST
def certificate_renew(request, pk):
    certificate = get_object_or_404(Certificate, pk=pk)
    services.certificate_renewal_request(certificate=certificate, trigger=Trigger.UI)
    messages.success(
        request,
        f"Renewal of {certificate.name} queued: the new certificate is deployed when it "
        "arrives; its outcome shows below.",
    )
    return redirect("certs:certificate-detail", pk=pk)


@owner_required
@require_POST
def certificates_renew(request):
    services.certificates_renewal_request(trigger=Trigger.UI)
    messages.success(
        request,
        "Queued: every certificate the setup needs is added, and those due are renewed.",
    )
    return redirect("certs:certificate-list")
