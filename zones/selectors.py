"""Reads of the DNS app: the snapshot records are made of, settings with their defaults, the
domains a user may see with their latest check."""

import ipaddress

from django.db.models import OuterRef, Subquery

from gateway.models import Domain
from gateway.selectors import mail_domains
from hosts.models import Host, TunnelPeer
from hosts.render.context import SERVED_PORTS, RenderContext
from zones.models import CheckRun, DkimKey, PushTarget, ZoneSettings
from zones.records import ALL_PORTS, DomainFacts, Facts


def settings_for(domain: Domain) -> ZoneSettings:
    """The domain's settings, or the defaults (unsaved) when it has none yet."""
    try:
        return domain.zone_settings
    except ZoneSettings.DoesNotExist:
        return ZoneSettings(domain=domain)


def settings_by_domain_name(names: list[str]) -> dict[str, ZoneSettings]:
    saved = {
        row.domain.name: row
        for row in ZoneSettings.objects.filter(domain__name__in=names).select_related("domain")
    }
    return {name: saved.get(name) or ZoneSettings() for name in names}


def signing_keys(ctx: RenderContext) -> list[DkimKey]:
    """The key each enabled domain of a render context signs with now, by domain name: during
    a rotation the new key is only published and the old one still signs; a domain without
    a signing key is left out (its mail goes unsigned)."""
    names = [entry.name for entry in ctx.directory.domains]
    keys = DkimKey.objects.published().filter(domain__name__in=names, active=True)
    return list(keys.select_related("domain").order_by("domain__name"))


def push_target_for(domain: Domain) -> PushTarget | None:
    try:
        return domain.push_target
    except PushTarget.DoesNotExist:
        return None


def dns_facts() -> Facts:
    """Every domain with its settings and DKIM keys, and the hosts mail passes through."""
    domains = list(Domain.objects.order_by("name"))
    settings = {row.domain_id: row for row in ZoneSettings.objects.all()}
    keys: dict[int, list[DkimKey]] = {}
    for key in DkimKey.objects.order_by("created_at", "selector"):
        keys.setdefault(key.domain_id, []).append(key)
    mailserver, gateway = _mail_hosts()
    return Facts(
        domains=tuple(
            DomainFacts(
                name=domain.name,
                mail_hostname=domain.mail_hostname,
                settings=settings.get(domain.pk) or ZoneSettings(domain=domain),
                dkim_keys=tuple(keys.get(domain.pk, ())),
            )
            for domain in domains
        ),
        gateway_ipv4=str(gateway.public_ipv4 or "") if gateway else "",
        gateway_ipv6=str(gateway.public_ipv6 or "") if gateway else "",
        helo_name=mailserver.public_name(mail_domains()) if mailserver else "",
        relay_host=_relay_host(mailserver),
        offered_ports=_offered_ports(mailserver),
        problems=tuple(_problems(mailserver, gateway)),
    )


def mail_gateway() -> Host | None:
    """The gateway whose public addresses DNS gives the mail host and web names."""
    return _mail_hosts()[1]


def _mail_hosts() -> tuple[Host | None, Host | None]:
    """The mail server, and the gateway it reaches the internet through (its tunnel's hub, or
    else the first gateway)."""
    mailserver = Host.objects.filter(is_mailserver=True).select_related("relay").first()
    peer = (
        TunnelPeer.objects.filter(host=mailserver).select_related("tunnel__hub").first()
        if mailserver
        else None
    )
    gateway = peer.tunnel.hub if peer else Host.objects.filter(is_gateway=True).first()
    return mailserver, gateway


def _offered_ports(mailserver: Host | None) -> frozenset[int]:
    if mailserver is None or mailserver.mail_backend not in SERVED_PORTS:
        return ALL_PORTS
    return frozenset(SERVED_PORTS[mailserver.mail_backend])


def _relay_host(mailserver: Host | None) -> str:
    if mailserver is None or mailserver.relay is None:
        return ""
    try:
        ipaddress.ip_address(mailserver.relay.host)
    except ValueError:
        return mailserver.relay.host  # a host name: SPF can name it
    return ""  # an address (the Bridge's 127.0.0.1): where the provider sends from is unknown


def _problems(mailserver: Host | None, gateway: Host | None) -> list[str]:
    problems = []
    if gateway is None:
        problems.append(
            "There is no gateway host yet: the MX, the mail host's addresses and SPF have "
            "nothing to point at."
        )
    if mailserver is None:
        problems.append("There is no mail server host yet: its HELO name (the PTR) is unknown.")
    elif mailserver.relay is not None:
        # Not named: domain managers read this too, and the relays are the owner's.
        problems.append(
            "Mail leaves through a smarthost: add the addresses it sends from to SPF under "
            "'more SPF senders' (e.g. include:_spf.protonmail.ch for Proton)."
        )
    return problems


def dns_domains(user):
    """The domains whose DNS ``user`` may see and act on: the owner's all, a manager's own."""
    return Domain.objects.visible_to(user)


def with_latest_check(domains) -> list[tuple[Domain, CheckRun | None]]:
    """Each domain with its most recent check, in two queries whatever the number."""
    rows = list(domains.annotate(latest_check_id=Subquery(_latest_run_id())))
    ids = [row.latest_check_id for row in rows if row.latest_check_id]
    runs = CheckRun.objects.select_related("domain").in_bulk(ids)
    return [(row, runs.get(row.latest_check_id)) for row in rows]


def latest_by_domain(domain_ids: list[int]) -> dict[int, CheckRun]:
    rows = with_latest_check(Domain.objects.filter(pk__in=domain_ids))
    return {domain.pk: run for domain, run in rows if run is not None}


def _latest_run_id():
    latest = CheckRun.objects.filter(domain=OuterRef("pk")).order_by("-started_at", "-pk")
    return latest.values("pk")[:1]


def latest_check(domain: Domain) -> CheckRun | None:
    return CheckRun.objects.filter(domain=domain).prefetch_related("results").first()
