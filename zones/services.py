"""Workflows of the DNS app: DKIM keys and their rotation, live checks with their history, the
zone file, and pushing a zone.

Who may do what is decided by the callers through ``gateway.scoping``: a domain's managers (and
the owner) generate and rotate its DKIM keys, check it and push it. Only where a push goes
(``push_target_check_change``) looks at the user: that is the owner's.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.models import Domain
from gateway.scoping import acts_as_owner
from zones import checks, dkim, push, zonefile
from zones.choices import CheckTrigger
from zones.models import CheckResult, CheckRun, DkimKey, PushTarget
from zones.records import zone_of, zone_records
from zones.resolver import Lookup
from zones.selectors import dns_facts, settings_for

KEEP_CHECKS = 100  # check runs kept per domain; older ones are removed with their results


# --- DKIM ----------------------------------------------------------------------------------------


@transaction.atomic
def dkim_key_generate(*, domain: Domain, selector: str = "") -> DkimKey:
    """A new RSA-2048 key. The domain's first key signs at once (there is nothing to rotate
    from); a later one is only published, until ``dkim_key_activate`` switches signing to it,
    once its record is in DNS."""
    Domain.objects.select_for_update().get(pk=domain.pk)  # one generation per domain at a time
    pair = dkim.generate()
    first = not DkimKey.objects.filter(domain=domain, retired_at__isnull=True).exists()
    key = DkimKey(
        domain=domain,
        selector=selector or _free_selector(domain),
        private_key=pair.private_pem,
        public_key=pair.public_base64,
        active=first and not DkimKey.objects.filter(domain=domain, active=True).exists(),
    )
    key.full_clean()
    key.save()
    return key


def _free_selector(domain: Domain) -> str:
    used = set(DkimKey.objects.filter(domain=domain).values_list("selector", flat=True))
    if "dkim" not in used:
        return "dkim"  # Mailu's default selector (docs/facts.md §3)
    base = f"dkim{timezone.now():%Y%m}"
    candidates = [base, *(f"{base}-{n}" for n in range(2, 100))]
    return next(name for name in candidates if name not in used)


@transaction.atomic
def dkim_key_activate(*, key: DkimKey) -> DkimKey:
    """Switch the domain's signing to ``key``; the previous key stays published until retired."""
    keys = list(DkimKey.objects.select_for_update().filter(domain_id=key.domain_id))
    key = next(row for row in keys if row.pk == key.pk)
    if key.retired_at:
        raise ValidationError("A retired key cannot sign again; generate a new one.")
    for row in keys:
        if row.active and row.pk != key.pk:
            row.active = False
            row.save(update_fields=["active"])
    if not key.active:
        key.active = True
        key.save(update_fields=["active"])
    return key


@transaction.atomic
def dkim_key_retire(*, key: DkimKey) -> DkimKey:
    """Withdraw a key that no longer signs: its record is removed at the next push (or by hand,
    as the zone file and the checks say); the row goes once the record is gone."""
    key = DkimKey.objects.select_for_update().get(pk=key.pk)
    if key.active:
        raise ValidationError(
            "This key still signs. Activate the new key first, wait until mail signed with the "
            "old one has been delivered, then retire it."
        )
    if key.retired_at is None:
        key.retired_at = timezone.now()
        key.save(update_fields=["retired_at"])
    return key


def dkim_key_forget(*, key: DkimKey) -> None:
    """Delete a retired key (its record has been removed from DNS)."""
    if key.retired_at is None:
        raise ValidationError("Retire the key first: its record must leave DNS before the key.")
    key.delete()


# --- checks --------------------------------------------------------------------------------------


def check_run(*, domain: Domain, trigger: str = CheckTrigger.UI, lookup: Lookup | None = None):
    """Check the domain's records live and keep the result in its history."""
    lookup = lookup or Lookup()
    findings = checks.check_domain(dns_facts(), domain.name, lookup)
    with transaction.atomic():
        run = CheckRun.objects.create(domain=domain, trigger=trigger, resolver=lookup.description)
        CheckResult.objects.bulk_create(
            CheckResult(run=run, position=n, **finding.__dict__)
            for n, finding in enumerate(findings)
        )
        run.passed = sum(finding.status == "ok" for finding in findings)
        run.failed = sum(finding.status == "fail" for finding in findings)
        run.warnings = sum(finding.status == "warn" for finding in findings)
        run.dnssec = next((f.found[0] for f in findings if f.kind == "dnssec" and f.found), "")
        run.finished_at = timezone.now()
        run.save(update_fields=["passed", "failed", "warnings", "dnssec", "finished_at"])
    _prune(domain)
    return run


def _prune(domain: Domain) -> None:
    keep = CheckRun.objects.filter(domain=domain).values_list("pk", flat=True)[:KEEP_CHECKS]
    CheckRun.objects.filter(domain=domain).exclude(pk__in=list(keep)).delete()


# --- zone file -----------------------------------------------------------------------------------


def zone_file_for(*, domain: Domain) -> bytes:
    settings = settings_for(domain)
    return zonefile.zone_file(
        dns_facts(),
        domain.name,
        serial=int(timezone.now().strftime("%Y%m%d%H")),
        nameservers=settings.nameservers or [domain.mail_hostname],
        contact=f"hostmaster@{domain.name}",
        ttl=settings.ttl,
        placeholder_ns=not settings.nameservers,
    )


# --- push ----------------------------------------------------------------------------------------


# A push is a connection from Mailgate's own network to this address and port: only the owner
# aims it. Managers keep the TSIG key and the provider settings.
PUSH_TARGET_OWNER_FIELDS = ("server", "port")


def push_target_check_change(*, target: PushTarget, values: dict, user) -> None:
    """Refuse ``values`` for ``target`` (saved or new) that move its server or port, unless
    ``user`` acts as the owner."""
    if acts_as_owner(user):
        return
    saved = PushTarget.objects.filter(pk=target.pk).values(*PUSH_TARGET_OWNER_FIELDS).first()
    before = saved or {
        name: PushTarget._meta.get_field(name).get_default() for name in PUSH_TARGET_OWNER_FIELDS
    }
    changed = {
        name: "Only the owner changes where the zone is pushed to."
        for name in PUSH_TARGET_OWNER_FIELDS
        if name in values and values[name] != before[name]
    }
    if changed:
        raise ValidationError(changed)


def push_plan(*, target: PushTarget) -> push.Plan:
    """What a push would change in the target's zone; nothing is written."""
    records = zone_records(dns_facts(), target.zone)
    return push.make_plan(target.zone, records, push.backend_for(target))


def push_apply(*, target: PushTarget, digest: str = "") -> push.Plan:
    """Apply the plan; with ``digest``, only if the plan is still the one that was shown."""
    backend = push.backend_for(target)
    facts = dns_facts()
    plan = push.make_plan(target.zone, zone_records(facts, target.zone), backend)
    if digest and digest != plan.digest:
        raise ValidationError("The zone or the records changed since the plan was shown.")
    if plan.changes:
        backend.apply(list(plan.changes))
    PushTarget.objects.filter(pk=target.pk).update(last_pushed_at=timezone.now())
    _forget_removed_keys(facts, target.zone)
    return plan


def _forget_removed_keys(facts, zone: str) -> None:
    """Retired keys whose records the push has just removed are no longer needed."""
    retired = DkimKey.objects.filter(retired_at__isnull=False).select_related("domain")
    for key in retired:
        if zone_of(facts, key.record_name) == zone:
            key.delete()
