"""Adoption proven in the lab (docs/adoption.md, "Proven in the lab"), after ``lab verify`` and the
mailbox proofs: Mailgate forgets the family's mailboxes and aliases (their rows are deleted, as for
a mail server that ran before Mailgate knew it), reads them back from the running home server over
SSH (``hosts.adopt``: Postfix's tables and Dovecot's users, or Mailu's own export), and deploys it
the normal way. Nothing is lost: every mailbox comes back with its password hash and quota, every
alias with its destinations, the plan takes nothing away, every address routes where it routed
before (the adoption's own comparison, made again after the deployment), and the main password still
logs in over IMAP through the gateway."""

from django.db import transaction

from gateway.models import Alias, Mailbox
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import RemoteTree
from hosts.models import Host
from hosts.transport import Session
from lab.mailbox import deploy_home, imap_login
from lab.verify import Result, Run
from lab.world import NAMES, Lab


def directory(*, mailu: bool) -> dict[str, tuple]:
    """Each mailbox and alias by address, with what must survive. Mailu holds no "allowed as
    sender" (it lets every destination send as the alias: docs/mailbox-features.md), so on
    Mailu there is nothing to adopt it from."""
    boxes = {
        box.address: (box.password_hash, box.quota_mb, box.display_name)
        for box in Mailbox.objects.select_related("domain")
    }
    aliases = {
        alias.address: (sorted(alias.destinations), mailu or alias.allowed_as_sender)
        for alias in Alias.objects.select_related("domain")
    }
    return {**boxes, **aliases}


def adopt(home: Host, *, dry_run: bool = False):
    with Session(home) as session:
        return host_adopt(host=home, tree=RemoteTree(session), dry_run=dry_run)


def prove_adoption(lab: Lab) -> Result:
    run = Run(lab)
    home = Host.objects.get(name=NAMES["home"])
    before = directory(mailu=lab.mailu)
    with transaction.atomic():
        Alias.objects.all().delete()
        Mailbox.objects.all().delete()
    adoption = adopt(home)
    adopted = directory(mailu=lab.mailu)
    status = deploy_home()
    again = adopt(home, dry_run=True)
    imap = imap_login(run, run.password("alice"))
    lost = sorted(set(before) - set(adopted))
    changed = {
        key: _difference(before[key], adopted[key])
        for key in sorted(before.keys() & adopted.keys())
        if before[key] != adopted[key]
    }
    report = adoption.report
    ok = (
        not report.errors
        and not lost
        and not changed
        and adoption.plan is not None
        and adoption.plan.destructive == ()
        and report.routing == []
        and again.report.routing == []
        and bool(imap.get("ok"))
    )
    return Result(
        "Adoption: the home server read back over SSH, deployed, nothing lost",
        ok,
        f"{len(before)} mailboxes and aliases forgotten, {len(adopted)} adopted "
        f"(lost: {lost or 'none'}; changed: {changed or 'none'}; errors: {report.errors or 'none'})"
        f"\nplan: {[f.path for f in adoption.plan.changes] if adoption.plan else '-'} to change, "
        f"takes away: {list(adoption.plan.destructive) if adoption.plan else '-'}; "
        f"deployment {status}\nrouting differences: before the deployment "
        f"{report.routing or 'none'}, after it {again.report.routing or 'none'}\n"
        f"IMAP with alice's password: {imap}",
    )


def _difference(before: tuple, after: tuple) -> str:
    """Which fields differ, hashes by their first characters only."""

    def shown(value) -> str:
        return (
            f"{value[:12]}..." if isinstance(value, str) and value.startswith("{") else repr(value)
        )

    return ", ".join(
        f"{shown(old)} -> {shown(new)}"
        for old, new in zip(before, after, strict=True)
        if old != new
    )
