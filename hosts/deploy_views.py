"""Pages for deploying (owner only): host-key confirmation, the plan with its diffs, the
deployment history, a deployment's live log, rollback and "deploy all"."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.bundle import RenderError
from gateway.scoping import owner_required
from hosts import services
from hosts.choices import DeploymentStatus, DeploymentTrigger, FileChange
from hosts.models import Deployment, Host
from hosts.plan import PlanChanged, RemovalsUnconfirmed
from hosts.transport import TransportError


@owner_required
def host_key(request, pk):
    host = get_object_or_404(Host, pk=pk)
    if request.method == "POST":
        try:
            services.host_confirm_key(
                host=host,
                key=request.POST.get("key", ""),
                fingerprint=request.POST.get("fingerprint", ""),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("hosts:host-key", pk=pk)
        messages.success(request, f"{host}'s host key is pinned; a different key will be refused.")
        return redirect("hosts:host-plan", pk=pk)
    try:
        key, fingerprint = services.host_scan_key(host=host)
        error = None
    except TransportError as exc:
        key, fingerprint, error = "", "", str(exc)
    context = {"host": host, "key": key, "fingerprint": fingerprint, "error": error}
    return render(request, "hosts/host_key.html", context)


@owner_required
def host_plan(request, pk):
    host = get_object_or_404(Host, pk=pk)
    try:
        plan = services.host_plan(host=host)
    except (RenderError, TransportError) as exc:
        return _plan_page(request, host, None, error=str(exc))
    return _plan_page(request, host, plan)


@owner_required
@require_POST
def host_deploy(request, pk):
    """Deploy the plan that was shown; if it changed since, show the new one instead (409)."""
    host = get_object_or_404(Host, pk=pk)
    try:
        deployment = services.host_deploy(
            host=host,
            plan_digest=request.POST.get("digest", ""),
            trigger=DeploymentTrigger.UI,
            user=request.user,
            confirm_destructive=request.POST.get("confirm_destructive") == "on",
        )
    except (PlanChanged, RemovalsUnconfirmed) as exc:
        return _plan_page(request, host, exc.plan, changed=str(exc), status=409)
    except ValidationError as exc:
        return _plan_page(request, host, None, error=" ".join(exc.messages))
    except (RenderError, TransportError) as exc:
        return _plan_page(request, host, None, error=str(exc))
    return redirect("hosts:deployment-detail", pk=deployment.pk)


def _plan_page(request, host, plan, *, error="", changed="", status=200):
    context = {"host": host, "plan": plan, "error": error, "changed": changed}
    return render(request, "hosts/host_plan.html", context, status=status)


@owner_required
@require_POST
def deploy_all(request):
    deployments = services.deploy_all(trigger=DeploymentTrigger.UI, user=request.user)
    messages.success(request, f"{len(deployments)} deployment(s) queued, one per host.")
    return redirect("hosts:deployment-list")


@owner_required
def deployment_list(request):
    """The plans that wait for approval, then the history."""
    deployments = Deployment.objects.select_related("host", "triggered_by")
    page = Paginator(deployments, 50).get_page(request.GET.get("page"))
    context = {
        "page_obj": page,
        "is_paginated": page.has_other_pages(),
        "deployments": page,
        "waiting": deployments.filter(status=DeploymentStatus.AWAITING),
    }
    return render(request, "hosts/deployment_list.html", context)


@owner_required
def deployment_detail(request, pk):
    deployments = Deployment.objects.select_related("host", "triggered_by", "approved_by")
    deployment = get_object_or_404(deployments, pk=pk)
    files = deployment.files.exclude(change=FileChange.UNCHANGED)
    context = {
        "deployment": deployment,
        "files": files,
        "unchanged": deployment.files.count() - len(files),
        "statuses": DeploymentStatus,
    }
    return render(request, "hosts/deployment_detail.html", context)


@owner_required
def deployment_log(request, pk):
    """The log and status as an htmx fragment, polled while the deployment runs."""
    deployment = get_object_or_404(Deployment, pk=pk)
    response = render(request, "hosts/includes/deployment_log.html", {"deployment": deployment})
    if not deployment.in_progress:
        response["HX-Refresh"] = "true"  # once it ends, the whole page (its files) is current
    return response


@owner_required
@require_POST
def deployment_approve(request, pk):
    deployment = get_object_or_404(Deployment, pk=pk)
    try:
        services.deployment_approve(
            deployment=deployment,
            plan_digest=request.POST.get("digest", ""),
            user=request.user,
            confirm_destructive=request.POST.get("confirm_destructive") == "on",
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("hosts:deployment-detail", pk=pk)


@owner_required
@require_POST
def deployment_rollback(request, pk):
    deployment = get_object_or_404(Deployment, pk=pk)
    try:
        rollback = services.deployment_rollback(
            deployment=deployment, trigger=DeploymentTrigger.UI, user=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("hosts:deployment-detail", pk=pk)
    return redirect("hosts:deployment-detail", pk=rollback.pk)
