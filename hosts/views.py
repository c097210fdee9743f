from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.bundle import RenderError
from hosts import services
from hosts.models import Host, Tunnel
from hosts.render import render_host
from hosts.selectors import dashboard_summary


@login_required
def dashboard(request):
    return render(request, "dashboard.html", dashboard_summary(request.user))


@login_required
def host_files(request, pk):
    """What Mailgate would write to the host now: every file, how it is checked and activated.
    Secret files are listed with their size and checksum only."""
    host = get_object_or_404(Host.objects.manageable_by(request.user), pk=pk)
    try:
        bundle, error = render_host(host), None
    except RenderError as exc:
        bundle, error = None, str(exc)
    return render(
        request, "hosts/host_files.html", {"host": host, "bundle": bundle, "error": error}
    )


@login_required
@require_POST
def tunnel_rotate_keys(request, pk):
    tunnel = get_object_or_404(Tunnel, pk=pk)
    services.tunnel_rotate_keys_queue(tunnel=tunnel, user=request.user)
    messages.success(
        request, f"New WireGuard keys for {tunnel.interface} are being made; deploy to use them."
    )
    return redirect("hosts:tunnel-update", pk=tunnel.pk)
