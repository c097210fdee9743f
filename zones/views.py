"""DNS pages: every domain's status, one domain's records with their live check, the zone file,
DKIM keys and their rotation, settings, the push target and the push with its plan.

A domain's managers and the owner see and do all of it for that domain (see ``services``);
other users get a 404, as for any row they may not see."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from gateway.bundle import RenderError
from zones import selectors, services
from zones.choices import CheckTrigger
from zones.forms import DkimGenerateForm, PushTargetForm, ZoneSettingsForm
from zones.models import CheckRun, DkimKey, PushTarget
from zones.push import PushError
from zones.records import expected_records, zone_of


def _domain(request, pk):
    return get_object_or_404(selectors.dns_domains(request.user), pk=pk)


@login_required
def dns_list(request):
    rows = selectors.with_latest_check(selectors.dns_domains(request.user))
    return render(request, "zones/dns_list.html", {"rows": rows})


@login_required
def dns_domain(request, pk):
    domain = _domain(request, pk)
    facts = selectors.dns_facts()
    latest = selectors.latest_check(domain)
    results = {(r.kind, r.name, r.rtype): r for r in latest.results.all()} if latest else {}
    records = [
        (record, zone_of(facts, record.name), results.get(("record", record.name, record.rtype)))
        for record in expected_records(facts, domain.name)
    ]
    context = {
        "domain": domain,
        "facts": facts,
        "records": records,
        "latest": latest,
        "other_results": [r for r in results.values() if r.kind != "record"],
        "keys": DkimKey.objects.filter(domain=domain),
        "target": selectors.push_target_for(domain),
        "history": CheckRun.objects.filter(domain=domain)[:10],
        "generate_form": DkimGenerateForm(),
    }
    return render(request, "zones/dns_domain.html", context)


@login_required
@require_POST
def dns_check(request, pk):
    domain = _domain(request, pk)
    run = services.check_run(domain=domain, trigger=CheckTrigger.UI)
    if run.ok:
        messages.success(request, f"All {run.passed} checks of {domain} passed.")
    else:
        messages.error(request, f"{run.failed} of {domain}'s checks failed: see below.")
    return redirect("zones:dns-domain", pk=pk)


@login_required
def dns_zone_file(request, pk):
    domain = _domain(request, pk)
    try:
        content = services.zone_file_for(domain=domain)
    except RenderError as exc:
        messages.error(request, str(exc))
        return redirect("zones:dns-domain", pk=pk)
    response = HttpResponse(content, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{domain.name}.zone"'
    return response


@login_required
def dns_check_detail(request, pk):
    run = get_object_or_404(
        CheckRun.objects.visible_to(request.user).select_related("domain"), pk=pk
    )
    return render(request, "zones/check_detail.html", {"run": run, "results": run.results.all()})


@login_required
def dns_settings(request, pk):
    domain = _domain(request, pk)
    form = ZoneSettingsForm(
        request.POST or None, instance=selectors.settings_for(domain), user=request.user
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved the DNS settings of {domain}.")
        return redirect("zones:dns-domain", pk=pk)
    title = f"DNS settings of {domain}"
    return render(request, "zones/form.html", {"domain": domain, "form": form, "title": title})


@login_required
def dns_push_target(request, pk):
    domain = _domain(request, pk)
    target = selectors.push_target_for(domain) or PushTarget(domain=domain)
    form = PushTargetForm(request.POST or None, instance=target, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved where {domain}'s zone is pushed.")
        return redirect("zones:dns-push", pk=pk)
    title = f"Push target of {domain}"
    return render(request, "zones/form.html", {"domain": domain, "form": form, "title": title})


@login_required
def dns_push(request, pk):
    """GET shows the plan; POST applies it if it is still the plan that was shown."""
    domain = _domain(request, pk)
    target = selectors.push_target_for(domain)
    if target is None:
        return redirect("zones:dns-push-target", pk=pk)
    try:
        if request.method == "POST":
            plan = services.push_apply(target=target, digest=request.POST.get("digest", ""))
            messages.success(request, f"Pushed {len(plan.changes)} change(s) to {domain}.")
            return redirect("zones:dns-domain", pk=pk)
        plan, error = services.push_plan(target=target), None
    except (PushError, ValidationError) as exc:
        plan, error = None, " ".join(getattr(exc, "messages", [str(exc)]))
    context = {"domain": domain, "target": target, "plan": plan, "error": error}
    return render(request, "zones/dns_push.html", context)


@login_required
@require_POST
def dkim_generate(request, pk):
    domain = _domain(request, pk)
    form = DkimGenerateForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError([e for errors in form.errors.values() for e in errors])
        key = services.dkim_key_generate(domain=domain, selector=form.cleaned_data["selector"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"New DKIM key {key}: publish it (push) before it signs.")
    return redirect("zones:dns-domain", pk=pk)


def _key_action(action, done: str):
    @login_required
    @require_POST
    def view(request, pk):
        key = get_object_or_404(DkimKey.objects.manageable_by(request.user), pk=pk)
        domain_pk = key.domain_id
        try:
            action(key=key)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, done.format(key=key))
        return redirect("zones:dns-domain", pk=domain_pk)

    return view


dkim_activate = _key_action(services.dkim_key_activate, "{key} now signs outgoing mail.")
dkim_retire = _key_action(
    services.dkim_key_retire, "{key} is retired: the next push removes its record."
)
dkim_forget = _key_action(services.dkim_key_forget, "{key} is deleted.")
