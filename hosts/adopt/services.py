"""Adopting a host: read what it runs (``hosts.adopt.mailu``, ``.postfix``, ``.wireguard``) and
fill Mailgate's rows from it, in one transaction. Bad input (a document that is not an export, a
line Mailgate cannot express, a row its models refuse) stops it with every fault and its line,
and nothing is written. A row Mailgate already has is kept as it is, and a difference reported
as a conflict. What the host holds that Mailgate does not model is reported, never dropped. Then
the normal plan, made against the same files, and for Postfix the routing comparison.

The adoption marks the host as changed (``infrastructure_changed_at``), so that its first
deployment waits for the owner, who has the report and the plan in front of them."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from gateway.bundle import Bundle, RenderError
from hosts.adopt import mailu, postfix, readers, routing, rows, wireguard
from hosts.adopt.found import Found
from hosts.adopt.report import AdoptionRefused, Report, Where
from hosts.choices import MailBackend
from hosts.models import Host, Tunnel
from hosts.plan import Plan
from hosts.render import mailu as mailu_render
from hosts.render import postfix as postfix_render
from hosts.render import render_host


@dataclass
class Adoption:
    report: Report
    plan: Plan | None  # None without the host's files (an export alone) or while unrenderable


def host_adopt(
    *, host: Host, tree=None, mailu_export: tuple[str, str] | None = None, dry_run: bool = False
) -> Adoption:
    """Adopt what ``tree`` (a ``sources`` tree: a copy of the host's files, or the host over
    SSH) and ``mailu_export`` (its path and text) hold into Mailgate; with ``dry_run`` nothing
    stays written. Raises AdoptionRefused, with the report, on bad input."""
    report, found = Report(), Found()
    read(host=host, tree=tree, mailu_export=mailu_export, found=found, report=report)
    if host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT:
        _dovecot_hashes(found, report)
    if report.errors:
        raise AdoptionRefused(report)
    with transaction.atomic():
        rows.write(host=host, found=found, report=report)
        if report.errors:
            raise AdoptionRefused(report)
        Host.objects.filter(pk=host.pk).update(infrastructure_changed_at=timezone.now())
        plan = _plan(host, tree, found, report)
        transaction.set_rollback(dry_run)
    return Adoption(report, plan)


def read(*, host: Host, tree, mailu_export, found: Found, report: Report) -> None:
    if mailu_export is None and tree is not None and (text := tree.mailu_export()):
        mailu_export = (f"{tree}: flask mailu config-export --full --secrets", text)
    if mailu_export is not None:
        mailu.read_export(mailu_export[1], mailu_export[0], found, report)
    if tree is None:
        return
    if (env := tree.read(mailu_render.ENV_PATH)) is not None:
        mailu.read_env(env.decode(), mailu_render.ENV_PATH, found, report)
    if host.mail_backend == MailBackend.POSTFIX_DOVECOT or host.is_relay:
        postfix.read(tree, found, report)  # a Mailu host's own Postfix is not its mail server
    tunnel = Tunnel.objects.filter(hub=host).first() or Tunnel.objects.first()
    wireguard.read(tree, tunnel.interface if tunnel else "wg0", found, report)
    if host.is_gateway:
        wireguard.gateway_flavour(tree, found, report)


def _dovecot_hashes(found: Found, report: Report) -> None:
    """On a Postfix + Dovecot host, every hash Dovecot could not verify (Mailu's passlib
    formats, adopted from its export): that password or device stops logging in."""
    for mailbox in found.mailboxes.values():
        if mailbox.password_hash and not readers.dovecot_verifies(mailbox.password_hash):
            report.unknown(
                mailbox.where,
                f"mailbox {mailbox.address}: its password hash "
                f"({_scheme(mailbox.password_hash)}) is one Dovecot cannot verify: it "
                "will not log in on this host until its password is set in Mailgate",
            )
        for device in mailbox.devices:
            if not readers.dovecot_verifies(device.password_hash):
                report.unknown(
                    device.where,
                    f"mailbox {mailbox.address}: device password "
                    f"{device.name!r} ({_scheme(device.password_hash)}) is a hash "
                    "Dovecot cannot verify: it will not log in on this host; make a "
                    "new device password",
                )


def _scheme(digest: str) -> str:
    return digest.split("$")[1] if digest.startswith("$") and "$" in digest[1:] else digest[:12]


# --- what follows the rows: settings Mailgate renders otherwise, routing, the plan --------------


def _plan(host: Host, tree, found: Found, report: Report) -> Plan | None:
    try:
        bundle = render_host(host)
    except RenderError as exc:
        report.unknown(Where(host.name), f"Mailgate cannot render {host} yet: {exc}")
        return None
    if tree is None:
        return None
    _settings(tree, bundle, report)
    report.routing += routing.differences(tree, found, bundle)
    return tree.plan(host, bundle)


SECRETS = ("SECRET_KEY", "RELAYPASSWORD")
SETTINGS_FILES = {postfix_render.MAIN_CF: readers.main_cf, mailu_render.ENV_PATH: readers.env_file}


def _settings(tree, bundle: Bundle, report: Report) -> None:
    """Each setting of main.cf and mailu.env that Mailgate's rendering gives another value or
    none: not understood, and the plan's diff shows it."""
    rendered = {file.path: file for file in bundle.files}
    for path, read in SETTINGS_FILES.items():
        text = tree.read(path)
        if text is None or path not in rendered:
            continue
        mine = read(rendered[path].text)
        for key, entry in read(text.decode()).items():
            if key in mine and mine[key].value == entry.value:
                continue
            if key in SECRETS:  # neither value is shown
                report.unknown(Where(path, entry.line), f"{key} (Mailgate renders its own)")
                continue
            after = mine[key].value if key in mine else "nothing"
            report.unknown(Where(path, entry.line), f"{key} = {entry.value} (Mailgate: {after})")
