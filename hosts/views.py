from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from hosts import tasks
from hosts.models import Tunnel
from hosts.selectors import dashboard_summary


@login_required
def dashboard(request):
    return render(request, "dashboard.html", dashboard_summary(request.user))


@login_required
@require_POST
def tunnel_rotate_keys(request, pk):
    if not request.user.is_superuser:
        raise PermissionDenied
    tunnel = get_object_or_404(Tunnel, pk=pk)
    transaction.on_commit(lambda: tasks.tunnel_rotate_keys.delay(tunnel.pk, request.user.pk))
    messages.success(
        request, f"New WireGuard keys for {tunnel.interface} are being made; deploy to use them."
    )
    return redirect("tunnel-update", pk=tunnel.pk)
