"""What adoption found becomes rows: the host's own settings, its relay, the domains, mailboxes
and aliases, the tunnel. Each row is checked by its model; a refusal is an error at the line the
row came from (and the adoption writes nothing). A row Mailgate has already is kept as it is,
and any difference is a conflict."""

import ipaddress
import math
from dataclasses import replace

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from gateway import audit
from gateway.models import Alias, AppPassword, Domain, Mailbox
from hosts.adopt.found import Found, FoundTunnel
from hosts.adopt.report import Report, Where
from hosts.choices import DeploymentStatus, RelayKind, TlsLevel
from hosts.models import Host, Relay, Tunnel, TunnelPeer

MIB = 1024 * 1024


def write(*, host: Host, found: Found, report: Report) -> None:
    _host(host, found, report)
    domains = _domains(host, found, report)
    _directory(domains, found, report)
    _managers(domains, found, report)
    if found.tunnel:
        (_hub if found.tunnel.listen_port else _spoke)(host, found, found.tunnel, report)


def _saved(row, where: Where, report: Report, what: str) -> bool:
    """Save ``row`` if its model takes it; else one error per refused field, at ``where``."""
    try:
        row.full_clean()
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            report.error(where, f"{what}: {field}: {' '.join(messages)}")
        return False
    row.save()
    return True


def _host(host: Host, found: Found, report: Report) -> None:
    deployed = host.deployments.filter(status=DeploymentStatus.SUCCEEDED).exists()
    for field, (value, where) in found.host.items():
        current = getattr(host, field)
        if current == value:
            continue
        # A value Mailgate chose itself (the generated Mailu key, no flavour yet) gives way to
        # the host's until Mailgate has deployed it.
        if not current or (field == "mailu_secret_key" and not deployed):
            setattr(host, field, value)
            report.adopt(
                where, f"host {field}" + ("" if field == "mailu_secret_key" else f" = {value}")
            )
        else:
            report.conflict(where, f"host {field}: the host says {value}, Mailgate {current}")
    if found.relay:
        _relay(host, found, report)
    _saved(host, Where(host.name), report, f"host {host}")


def _relay(host: Host, found: Found, report: Report) -> None:
    seen = found.relay
    relay = Relay.objects.filter(host=seen.host, port=seen.port, username=seen.username).first()
    if relay is None:
        relay = Relay(
            name=f"{host.name}-smarthost"[:63],
            kind=RelayKind.PROTON_BRIDGE if seen.port == 1025 else RelayKind.GENERIC,
            host=seen.host,
            port=seen.port,
            username=seen.username,
            password=seen.password,
            tls_level=seen.tls_level if seen.tls_level in TlsLevel.values else TlsLevel.ENCRYPT,
            rewrite_sender_to=seen.rewrite_sender_to,
        )
        if not _saved(relay, seen.where, report, f"relay {seen.host}"):
            return
    if host.relay_id not in (None, relay.pk):
        mine = host.relay.next_hop
        report.conflict(seen.where, f"relay: the host uses {relay.next_hop}, Mailgate {mine}")
        return
    host.relay = relay


def _mail_hostname(host: Host, found: Found) -> str:
    return host.fqdn or (found.host.get("fqdn") or ("",))[0]


def _domains(host: Host, found: Found, report: Report) -> dict[str, Domain]:
    existing = {d.name: d for d in Domain.objects.filter(name__in=list(found.domains))}
    hostname = _mail_hostname(host, found)
    for name, where in found.domains.items():
        if name in existing:
            report.conflict(where, f"domain {name} is in Mailgate already: kept as it is there")
            continue
        domain = Domain(name=name, mail_hostname=hostname)
        if _saved(domain, where, report, f"domain {name}"):
            existing[name] = domain
    return existing


def _split(address: str, domains: dict[str, Domain], where: Where, report: Report):
    local, _, name = address.rpartition("@")
    if name not in domains:
        report.error(where, f"{address}: its domain {name} is not one the host serves")
        return None, None
    return domains[name], local


# What a row Mailgate has already must match to be the one the host has.
COMPARED = {
    # and the settings the host's files say (Mailu's export does; Postfix's tables do not)
    Mailbox: ("password_hash", "display_name", "quota_mb", "enabled"),
    Alias: ("destinations", "allowed_as_sender"),
}


def _directory(domains: dict[str, Domain], found: Found, report: Report) -> None:
    """The mailboxes and aliases, checked by their models without a query each (the addresses
    are compared here, with what Mailgate has, in one query per table), then written in one
    insert per table, and logged as every change is."""
    held = {
        (row.domain_id, row.local_part): row
        for model in COMPARED
        for row in model.objects.filter(domain__in=domains.values()).select_related("domain")
    }
    rows = [
        *(_mailbox(seen, domains, report) for seen in found.mailboxes.values()),
        *(_alias(seen, domains, report) for seen in found.aliases.values()),
    ]
    new: dict[type, list] = {Mailbox: [], Alias: []}
    kept: list[tuple[Mailbox, Mailbox]] = []  # (Mailgate's, the host's) of one address
    claimed: set[tuple[int, str]] = set()
    for row, where in filter(None, rows):
        if not _valid(row, where, report):
            continue
        key = (row.domain_id, row.local_part)
        if key in claimed:
            report.error(where, f"{row.address} is both a mailbox and an alias")
        elif key in held:
            _compare(held[key], row, where, report)
            if type(held[key]) is type(row) is Mailbox:
                kept.append((held[key], row))
        else:
            new[type(row)].append(row)
        claimed.add(key)
    fresh = [(mailbox, mailbox.found.devices, 0) for mailbox in new[Mailbox]]
    devices = _devices(fresh + _missing_devices(kept, report), report)
    _loops(found, report)
    if report.errors:
        return
    for model, created in new.items():
        model.objects.bulk_create(created)
        audit.log_created(created)
    AppPassword.objects.bulk_create(devices)  # their mailboxes have their keys now
    audit.log_created(devices)


def _loops(found: Found, report: Report) -> None:
    """A forwarding loop among the adopted aliases and forwards (Mailu lets one be made, each
    row on its own is fine; Mailgate's models refuse it): an error at the row it starts from.
    An address that is neither an alias nor a mailbox goes to its domain's catch-all."""
    hops = {alias.address: alias.destinations for alias in found.aliases.values()}
    for mailbox in found.mailboxes.values():
        if forwards := mailbox.settings.get("forward_to"):
            hops[mailbox.address] = forwards

    def after(address: str) -> list[str]:
        if address in hops or address in found.mailboxes:
            return hops.get(address, [])
        catch_all = f"@{address.rpartition('@')[2]}"
        return [catch_all] if catch_all in hops else []

    done: set[str] = set()
    for start in hops:
        if loop := _cycle(start, after, done):
            rows = [found.aliases.get(a) or found.mailboxes.get(a) for a in loop]
            where = next((row.where for row in rows if row), Where(loop[0]))
            report.error(
                where,
                f"a forwarding loop: {' -> '.join(loop)} (Mailgate refuses one; change a "
                "forward or an alias first)",
            )


def _cycle(start: str, after, done: set[str]) -> list[str] | None:
    """The first loop reached from ``start`` (depth first), if it is one not reported yet."""
    path: list[str] = []
    on_path: set[str] = set()
    stack = [iter([start])]
    while stack:
        address = next(stack[-1], None)
        if address is None:
            stack.pop()
            if path:
                on_path.discard(path.pop())
            continue
        if address in on_path:
            return [*path[path.index(address) :], address]
        if address in done:
            continue
        done.add(address)
        path.append(address)
        on_path.add(address)
        stack.append(iter(after(address)))
    return None


def _missing_devices(kept: list[tuple[Mailbox, Mailbox]], report: Report) -> list[tuple]:
    """The host's device passwords that a mailbox Mailgate has lacks (by hash), to be added,
    so that the first deployment takes none away; a name that mailbox uses gets a number."""
    wanted = []
    for held, seen in kept:
        mine = dict(held.app_passwords.values_list("password_hash", "name"))
        names, missing = set(mine.values()), []
        for device in (d for d in seen.found.devices if d.password_hash not in mine):
            name = device.name if device.name not in names else f"{device.name} ({len(names) + 1})"
            names.add(name)
            missing.append(replace(device, name=name))
            report.adopt(device.where, f"device password {name!r} added to {held.address}")
        wanted.append((held, missing, len(mine)))
    return wanted


def _devices(wanted: list[tuple], report: Report) -> list[AppPassword]:
    """The device passwords to make, per mailbox (with the number it has already), checked by
    their model."""
    devices = []
    for mailbox, found_devices, already in wanted:
        if already + len(found_devices) > AppPassword.MAX_PER_MAILBOX:
            report.error(
                found_devices[0].where,
                f"mailbox {mailbox.address}: {already + len(found_devices)} device passwords, "
                f"Mailgate keeps at most {AppPassword.MAX_PER_MAILBOX}",
            )
        for device in found_devices:
            row = AppPassword(mailbox=mailbox, name=device.name, password_hash=device.password_hash)
            try:
                row.full_clean(exclude=["mailbox"], validate_unique=False)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    report.error(
                        device.where,
                        f"device password {device.name!r} of "
                        f"{mailbox.address}: {field}: {' '.join(messages)}",
                    )
                continue
            devices.append(row)
    return devices


def _mailbox(seen, domains: dict[str, Domain], report: Report):
    domain, local = _split(seen.address, domains, seen.where, report)
    if domain is None:
        return None
    quota = math.ceil(seen.quota_bytes / MIB)
    if quota * MIB != seen.quota_bytes:
        report.unknown(
            seen.where,
            f"mailbox {seen.address}: quota {seen.quota_bytes} bytes, rounded up to {quota} MB "
            "(Mailgate counts whole MB)",
        )
    if not seen.password_hash:
        report.unknown(seen.where, f"mailbox {seen.address}: no password hash (set one)")
    row = Mailbox(
        domain=domain,
        local_part=local,
        display_name=seen.display_name,
        quota_mb=quota,
        enabled=seen.enabled,
        password_hash=seen.password_hash,
        **seen.settings,
    )
    row.found = seen  # its device passwords, made with it or compared with Mailgate's
    return row, seen.where


def _alias(seen, domains: dict[str, Domain], report: Report):
    domain, local = _split(seen.address, domains, seen.where, report)
    if domain is None:
        return None
    row = Alias(
        domain=domain,
        local_part=local,
        destinations=seen.destinations,
        allowed_as_sender=seen.allowed_as_sender,
    )
    return row, seen.where


def _valid(row, where: Where, report: Report) -> bool:
    """What the model says of the row alone; uniqueness is ``_directory``'s."""
    try:
        row.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            report.error(
                where,
                f"{type(row).__name__.lower()} {_address(row)}: {field}: {' '.join(messages)}",
            )
        return False
    return True


def _address(row) -> str:
    return f"{row.local_part}@{row.domain.name}"


def _compare(held, seen, where: Where, report: Report) -> None:
    if type(held) is not type(seen):
        kind = type(held).__name__.lower()
        report.conflict(where, f"{held.address} is a {kind} in Mailgate (kept as it is)")
        return
    fields = [*COMPARED[type(held)], *getattr(getattr(seen, "found", None), "settings", ())]
    differ = [f for f in fields if getattr(held, f) != getattr(seen, f)]
    if differ:
        report.conflict(
            where,
            f"{held.address}: Mailgate has another {', '.join(differ)} (kept as it is)",
        )


def _managers(domains: dict[str, Domain], found: Found, report: Report) -> None:
    users = get_user_model().objects
    for name, email, where in found.managers:
        local, _, at = email.rpartition("@")
        person = (
            users.filter(username=email).first()
            or users.filter(mailboxes__local_part=local, mailboxes__domain__name=at).first()
        )
        if name in domains and person is not None:
            domains[name].managers.add(person)
            report.adopt(where, f"{person} manages {name}")
        else:
            report.unknown(
                where,
                f"{email} manages {name} in Mailu but has no panel account (Mailu keeps the "
                "right; give the mailbox an owner and adopt again)",
            )


def _hub(host: Host, found: Found, seen: FoundTunnel, report: Report) -> None:
    host.tunnel_address = host.tunnel_address or seen.address
    _saved(host, seen.where, report, f"host {host}")
    tunnel = Tunnel.objects.filter(interface=seen.interface).first()
    if tunnel is not None:
        if tunnel.hub_id != host.pk or tunnel.hub_private_key != seen.private_key:
            report.conflict(
                seen.where,
                f"tunnel {seen.interface} is in Mailgate already with another hub or key: kept",
            )
        return
    subnet = str(ipaddress.ip_interface(f"{seen.address}/{seen.prefix}").network)
    tunnel = Tunnel(
        interface=seen.interface,
        hub=host,
        listen_port=seen.listen_port,
        subnet=subnet,
        mtu=seen.mtu or Tunnel._meta.get_field("mtu").default,
        hub_private_key=seen.private_key,
    )
    if _saved(tunnel, seen.where, report, f"tunnel {seen.interface}"):
        for key, allowed, where in seen.peers:
            report.unknown(where, f"peer {key} ({', '.join(allowed)}): adopt that spoke to keep it")


def _spoke(host: Host, found: Found, seen: FoundTunnel, report: Report) -> None:
    tunnel = next(
        (t for t in Tunnel.objects.all() if t.hub_public_key == seen.hub_public_key), None
    )
    if tunnel is None:
        report.error(
            seen.where,
            f"the hub {seen.hub_public_key} is no tunnel's hub in Mailgate: adopt the hub first",
        )
        return
    if str(host.tunnel_address or "") not in ("", seen.address):
        report.conflict(
            seen.where,
            f"tunnel address: the host has {seen.address}, Mailgate {host.tunnel_address}",
        )
    host.tunnel_address = host.tunnel_address or seen.address
    _saved(host, seen.where, report, f"host {host}")
    if TunnelPeer.objects.filter(tunnel=tunnel, host=host).exists():
        report.conflict(seen.where, f"{host} is a peer of {tunnel} in Mailgate already: kept")
        return
    subnet, subnet_where = found.routed_subnet or ("", seen.where)
    peer = TunnelPeer(
        tunnel=tunnel,
        host=host,
        private_key=seen.private_key,
        keepalive=seen.keepalive,
        routed_subnet=subnet,
    )
    _saved(peer, subnet_where, report, f"peer {host}")
