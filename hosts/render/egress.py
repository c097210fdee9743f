"""SMTP egress through the gateway: outgoing mail (tcp/25) of a spoke leaves the internet from
the hub's public address, so a home line whose provider blocks port 25 can still deliver, and
receivers see the address the gateway's PTR record names.

Both sides get the same two files: ``/usr/local/sbin/mailgate-smtp-egress``
(``enable|disable|status|verify``, idempotent) and a oneshot systemd unit that runs it after the
tunnel comes up, so the rules survive a reboot.

- **Home (a spoke with ``egress_via_hub``)**: tcp/25 is marked (fwmark 0x19) and a policy rule
  sends marked packets to table 100, whose only route is the tunnel; mail to a private address
  (a relay host on the LAN) keeps the main table's route. The sources are the spoke's routed
  subnet (Mailu's containers: marked as they are forwarded, with the reference's Docker
  exceptions) and the host's own Postfix where it runs one (Postfix + Dovecot, a relay host, or
  any spoke without a subnet: marked as it leaves, then given the tunnel address as source).
- **Gateway (a hub with such spokes)**: forwards those sources' tcp/25 to the internet and
  translates them to its public IPv4.

The scripts follow the reference's ``smtp-egress-home-via-vps.sh`` and ``smtp-egress-vps.sh``
with these deliberate differences: each rule is written once (``each_rule``), and enable, disable
and verify all walk that one list, so they cannot drift apart; the policy rule is looked up by
its selectors (the reference greps ``ip rule`` for ``fwmark 25``, which never matches the
``0x19`` that ``ip`` prints, so a second ``enable`` failed on the duplicate rule); a sysctl's
original value is saved only by the first ``enable`` (a second one would save our own values);
and ``enable`` first undoes what an earlier, different version of the script enabled, so a
changed subnet or interface leaves no stale rules behind.
"""

import ipaddress

from gateway.bundle import File, RenderError, Unit
from gateway.writers import lines, shell_quote
from hosts.choices import MailBackend
from hosts.models import TunnelPeer
from hosts.render import systemd
from hosts.render.context import RenderContext
from hosts.render.wireguard import service as wireguard_service

SCRIPT = "/usr/local/sbin/mailgate-smtp-egress"
SERVICE = "mailgate-smtp-egress.service"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE}"
MARK = "0x19"  # 25, for SMTP
PRIVATE_NETS = tuple(
    ipaddress.IPv4Network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
)
TABLE = 100
PRIORITY = 10025

# Shared by both scripts. A rule is given as TABLE -A|-I CHAIN MATCH...: -A appends it, -I puts it
# at the top of its chain (before Docker's or a generic MASQUERADE).
COMMON = r"""
STATE_DIR="${MAILGATE_EGRESS_STATE:-/run/mailgate-smtp-egress}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
MISSING=0

add_rule() {
  local table="$1" how="$2" chain="$3"
  shift 3
  iptables -w -t "$table" -C "$chain" "$@" 2>/dev/null && return 0
  if [ "$how" = -I ]; then
    iptables -w -t "$table" -I "$chain" 1 "$@"
  else
    iptables -w -t "$table" -A "$chain" "$@"
  fi
}

# Removes every copy, also duplicates left by older scripts.
del_rule() {
  local table="$1" chain="$3"
  shift 3
  while iptables -w -t "$table" -D "$chain" "$@" 2>/dev/null; do :; done
}

check_rule() {
  local table="$1" chain="$3"
  shift 3
  if iptables -w -t "$table" -C "$chain" "$@" 2>/dev/null; then
    echo "ok       -t $table $chain $*"
  else
    echo "MISSING  -t $table $chain $*"
    MISSING=$((MISSING + 1))
  fi
}

check() {
  if "$@"; then return 0; fi
  MISSING=$((MISSING + 1))
}

# Sysctls by path under /proc/sys (an interface name may hold a dot). The value before the first
# change is kept in the state directory until disable puts it back.
set_sysctl() {
  local saved
  saved="$STATE_DIR/sysctl/${1//\//:}"
  [ -e "/proc/sys/$1" ] || return 0
  [ -e "$saved" ] || cat "/proc/sys/$1" >"$saved"
  echo "$2" >"/proc/sys/$1" || echo "warning: could not set $1" >&2
}

restore_sysctls() {
  local saved key
  for saved in "$STATE_DIR"/sysctl/*; do
    [ -e "$saved" ] || continue
    key="${saved##*/}"
    key="${key//://}"
    if [ -e "/proc/sys/$key" ]; then cat "$saved" >"/proc/sys/$key" || true; fi
    rm -f "$saved"
  done
}

# A different earlier version of this script (another subnet, interface or address) is undone
# with its own disable before this one applies its rules.
retire_previous() {
  local applied="$STATE_DIR/applied"
  if [ -e "$applied" ] && ! cmp -s "$applied" "$SELF"; then
    bash "$applied" disable
  fi
}

remember_applied() {
  cp "$SELF" "$STATE_DIR/applied"
}

link_up() {
  if ip link show dev "$1" >/dev/null 2>&1; then
    echo "ok       link $1"
  else
    echo "MISSING  link $1"
    return 1
  fi
}
"""

HOME = r"""
# Only looked up in the routing table by verify, never contacted (a documentation address).
PROBE=192.0.2.25

docker_user_chain() {
  iptables -w -n -L DOCKER-USER >/dev/null 2>&1
}

each_rule() {
  local act="$1"
  if [ "$OWN_MAIL" = yes ]; then
    # This host's own Postfix: its source address was chosen for the main table's route before
    # the mark sent the packet into the tunnel, so it gets the tunnel address (the routed
    # subnet's rule below comes first in POSTROUTING and keeps the containers' addresses).
    "$act" mangle -A OUTPUT -p tcp --dport 25 -j MARK --set-mark "$MARK_HEX"
    "$act" nat -I POSTROUTING -o "$WG_IF" -p tcp --dport 25 -j SNAT --to-source "$TUNNEL_ADDRESS"
  fi
  [ -n "$SOURCE_NET" ] || return 0
  "$act" mangle -A PREROUTING -s "$SOURCE_NET" -p tcp --dport 25 -j MARK --set-mark "$MARK_HEX"
  # No masquerading into the tunnel: the gateway translates the containers' own addresses.
  "$act" nat -I POSTROUTING -o "$WG_IF" -s "$SOURCE_NET" -p tcp --dport 25 -j ACCEPT
  if docker_user_chain || [ "$act" = del_rule ]; then
    "$act" filter -I DOCKER-USER -s "$SOURCE_NET" -o "$WG_IF" -p tcp --dport 25 -j ACCEPT
    "$act" filter -I DOCKER-USER -i "$WG_IF" -d "$SOURCE_NET" \
      -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    # Docker drops, in the raw table, packets for a container that did not come in through its
    # bridge; the replies come in through the tunnel, so they pass before Docker's drops.
    "$act" raw -I PREROUTING -i "$WG_IF" -d "$SOURCE_NET" -p tcp --sport 25 -j ACCEPT
  fi
}

policy_rule() {
  ip -4 rule show pref "$PRIORITY" fwmark "$MARK_HEX" table "$TABLE"
}

# Marked mail to a private address (a relay host on the LAN, the tunnel) keeps the main
# table's route: the gateway would only send it to its own provider's network.
private_rule() {
  ip -4 rule show pref "$((PRIORITY - 1))" to "$1" fwmark "$MARK_HEX" lookup main
}

add_routing() {
  local net
  if [ -z "$(policy_rule)" ]; then
    ip -4 rule add pref "$PRIORITY" fwmark "$MARK_HEX" table "$TABLE"
  fi
  for net in "${PRIVATE_NETS[@]}"; do
    if [ -z "$(private_rule "$net")" ]; then
      ip -4 rule add pref "$((PRIORITY - 1))" to "$net" fwmark "$MARK_HEX" lookup main
    fi
  done
  ip -4 route replace default dev "$WG_IF" table "$TABLE"
}

del_routing() {
  local net
  while ip -4 rule del pref "$PRIORITY" fwmark "$MARK_HEX" table "$TABLE" 2>/dev/null; do :; done
  for net in "${PRIVATE_NETS[@]}"; do
    while ip -4 rule del pref "$((PRIORITY - 1))" to "$net" fwmark "$MARK_HEX" lookup main \
      2>/dev/null; do :; done
  done
  ip -4 route del default dev "$WG_IF" table "$TABLE" 2>/dev/null || true
}

# The bridge (or other link) the source subnet is attached to, e.g. Mailu's br-... network; by
# its route, so that any prefix length works (the reference matched the first three octets).
source_link() {
  ip -4 -o route show exact "$SOURCE_NET" 2>/dev/null |
    awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }'
}

# Replies arrive through the tunnel while the main table routes their sources elsewhere: loose
# reverse-path filtering keeps them.
set_sysctls() {
  local link
  set_sysctl net/ipv4/conf/all/rp_filter 2
  set_sysctl net/ipv4/conf/default/rp_filter 2
  set_sysctl "net/ipv4/conf/$WG_IF/rp_filter" 2
  # Forwarding only for a routed subnet: this host's own mail is not forwarded.
  [ -n "$SOURCE_NET" ] || return 0
  set_sysctl net/ipv4/ip_forward 1
  link="$(source_link)"
  if [ -n "$link" ]; then set_sysctl "net/ipv4/conf/$link/rp_filter" 2; fi
}

check_routing() {
  local route net
  if [ -n "$(policy_rule)" ]; then
    echo "ok       ip rule pref $PRIORITY fwmark $MARK_HEX table $TABLE"
  else
    echo "MISSING  ip rule pref $PRIORITY fwmark $MARK_HEX table $TABLE"
    return 1
  fi
  for net in "${PRIVATE_NETS[@]}"; do
    if [ -z "$(private_rule "$net")" ]; then
      echo "MISSING  ip rule pref $((PRIORITY - 1)) to $net fwmark $MARK_HEX lookup main"
      return 1
    fi
  done
  route="$(ip -4 route get "$PROBE" mark "$MARK_HEX" 2>/dev/null || true)"
  case "$route" in
    *" dev $WG_IF "*) echo "ok       marked packets leave through $WG_IF" ;;
    *) echo "MISSING  marked packets do not leave through $WG_IF: ${route:-no route}"; return 1 ;;
  esac
}

case "${1:-}" in
  enable)
    mkdir -p "$STATE_DIR/sysctl"
    retire_previous
    set_sysctls
    each_rule add_rule
    add_routing
    remember_applied
    echo "Enabled: SMTP egress through $WG_IF (fwmark $MARK_HEX -> table $TABLE)."
    ;;
  disable)
    each_rule del_rule
    del_routing
    restore_sysctls
    rm -f "$STATE_DIR/applied"
    echo "Disabled: SMTP egress through $WG_IF."
    ;;
  status)
    echo "=== rules"
    each_rule check_rule
    echo "=== policy routing"
    policy_rule
    ip -4 route show table "$TABLE" 2>/dev/null || true
    echo "=== sysctls"
    sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter || true
    echo "=== counters"
    iptables -w -t mangle -vnL OUTPUT
    iptables -w -t mangle -vnL PREROUTING
    ;;
  verify)
    check link_up "$WG_IF"
    each_rule check_rule
    check check_routing
    if [ "$MISSING" -gt 0 ]; then
      echo "$MISSING part(s) of the SMTP egress are missing." >&2
      exit 1
    fi
    echo "SMTP egress through $WG_IF is in place."
    ;;
  *)
    echo "Usage: ${0##*/} {enable|disable|status|verify}" >&2
    exit 2
    ;;
esac
"""

GATEWAY = r"""
each_rule() {
  local act="$1" source
  for source in "${SOURCES[@]}"; do
    "$act" filter -A FORWARD -i "$WG_IF" -o "$WAN_IF" -s "$source" -p tcp --dport 25 -j ACCEPT
  done
  "$act" filter -A FORWARD -i "$WAN_IF" -o "$WG_IF" \
    -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  # Path MTU safety through the tunnel.
  "$act" mangle -A FORWARD -i "$WG_IF" -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
  "$act" mangle -A FORWARD -o "$WG_IF" -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
  # At the top of the chain, to outrank a generic MASQUERADE.
  for source in "${SOURCES[@]}"; do
    "$act" nat -I POSTROUTING -o "$WAN_IF" -s "$source" -p tcp --dport 25 \
      -j SNAT --to-source "$PUBLIC_IPV4"
  done
}

check_forwarding() {
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; then
    echo "ok       net.ipv4.ip_forward = 1"
  else
    echo "MISSING  net.ipv4.ip_forward = 1"
    return 1
  fi
}

case "${1:-}" in
  enable)
    mkdir -p "$STATE_DIR"
    retire_previous
    # Left on by disable, as in the reference: the hub routes between its spokes as well.
    echo 1 >/proc/sys/net/ipv4/ip_forward
    each_rule add_rule
    remember_applied
    echo "Enabled: SMTP egress from ${SOURCES[*]} through $WAN_IF as $PUBLIC_IPV4."
    ;;
  disable)
    each_rule del_rule
    rm -f "$STATE_DIR/applied"
    echo "Disabled: SMTP egress through $PUBLIC_IPV4."
    ;;
  status)
    echo "=== rules"
    each_rule check_rule
    echo "=== forwarding"
    sysctl net.ipv4.ip_forward || true
    echo "=== counters"
    iptables -w -vnL FORWARD
    iptables -w -t nat -vnL POSTROUTING
    ;;
  verify)
    check link_up "$WG_IF"
    check link_up "$WAN_IF"
    check check_forwarding
    each_rule check_rule
    if [ "$MISSING" -gt 0 ]; then
      echo "$MISSING part(s) of the SMTP egress are missing." >&2
      exit 1
    fi
    echo "SMTP egress through $WAN_IF as $PUBLIC_IPV4 is in place."
    ;;
  *)
    echo "Usage: ${0##*/} {enable|disable|status|verify}" >&2
    exit 2
    ;;
esac
"""


def units(ctx: RenderContext) -> list[Unit]:
    home = ctx.spoke_of if ctx.spoke_of and ctx.spoke_of.egress_via_hub else None
    egress_spokes = sorted((p for p in ctx.peers if p.egress_via_hub), key=_by_host_name)
    if home and egress_spokes:
        raise RenderError(
            f"{ctx.host.name} cannot both send SMTP through a gateway and be the gateway of "
            "other spokes' SMTP: both would need mailgate-smtp-egress."
        )
    if home:
        return [_unit(home.tunnel.interface, home_script(home))]
    if egress_spokes:
        script = gateway_script(ctx, egress_spokes)
        return [_unit(ctx.hub_of.interface, script)]
    return []


def home_script(peer: TunnelPeer) -> bytes:
    """The spoke's side: which traffic enters the tunnel, and how."""
    source = str(_ipv4_network(peer.routed_subnet, peer)) if peer.routed_subnet else ""
    variables = [
        ("WG_IF", peer.tunnel.interface),
        ("SOURCE_NET", source),
        ("OWN_MAIL", "yes" if own_mail(peer) else "no"),
        ("TUNNEL_ADDRESS", _ipv4_address(peer.host.tunnel_address, peer)),
        ("MARK_HEX", MARK),
        ("TABLE", TABLE),
        ("PRIORITY", PRIORITY),
    ]
    senders = [
        *(["tcp/25 from SOURCE_NET (e.g. Mailu's containers)"] if source else []),
        *(["this host's own tcp/25 (OWN_MAIL)"] if own_mail(peer) else []),
    ]
    purpose = f"{' and '.join(senders)} enters the tunnel."
    private = " ".join(shell_quote(str(net)) for net in PRIVATE_NETS)
    return _script(
        f"SMTP egress through the gateway, home side: {purpose}",
        variables,
        HOME,
        extra=[f"PRIVATE_NETS=({private})"],
    )


def own_mail(peer: TunnelPeer) -> bool:
    """Whether the spoke's own Postfix sends (a Postfix + Dovecot mail server or a relay host),
    beside or instead of a routed subnet's containers (Mailu's)."""
    host = peer.host
    return (
        not peer.routed_subnet
        or host.mail_backend == MailBackend.POSTFIX_DOVECOT
        or (host.is_relay)
    )


def gateway_script(ctx: RenderContext, spokes: list[TunnelPeer]) -> bytes:
    """The hub's side: forward the spokes' tcp/25 to the internet and translate it."""
    host = ctx.host
    if not host.public_ipv4:
        raise RenderError(
            f"The gateway {host.name} needs a public IPv4 address for its spokes' SMTP to "
            "leave from."
        )
    sources = " ".join(shell_quote(source) for peer in spokes for source in egress_sources(peer))
    variables = [
        ("WAN_IF", host.wan_interface),
        ("WG_IF", ctx.hub_of.interface),
        ("PUBLIC_IPV4", ipaddress.IPv4Address(host.public_ipv4)),
    ]
    purpose = "the spokes' tcp/25 leaves through WAN_IF as PUBLIC_IPV4."
    return _script(
        f"SMTP egress through the gateway, gateway side: {purpose}",
        variables,
        GATEWAY,
        extra=[f"SOURCES=({sources})"],
    )


def egress_sources(peer: TunnelPeer) -> list[str]:
    """The addresses whose tcp/25 a spoke sends through the hub: its routed subnet (Mailu's
    containers) and its own tunnel address (its own Postfix, after its own SNAT to it)."""
    sources = [str(_ipv4_network(peer.routed_subnet, peer))] if peer.routed_subnet else []
    if own_mail(peer):
        sources.append(f"{_ipv4_address(peer.host.tunnel_address, peer)}/32")
    return sources


def _script(purpose: str, variables: list, body: str, extra: list[str] = ()) -> bytes:
    top = [
        f"# {purpose}",
        f"# Usage: {SCRIPT} {{enable|disable|status|verify}}",
        "set -Eeuo pipefail",
        "",
        *(f"{name}={shell_quote(value)}" for name, value in variables),
        *extra,
    ]
    return b"#!/usr/bin/env bash\n" + lines(top) + (COMMON + body).encode()


def _unit(interface: str, script: bytes) -> Unit:
    tunnel = wireguard_service(interface)
    quoted = shell_quote(SCRIPT)
    return Unit(
        name="smtp-egress",
        files=(
            File(SCRIPT, script, mode=0o755),
            File(SERVICE_PATH, _service(tunnel)),
        ),
        checks=script_checks(SCRIPT),
        # The unit's own start runs enable the first time; running enable again applies a
        # changed script to an already active unit without a gap in the rules.
        activate=(systemd.enable_now(SERVICE), f"{quoted} enable"),
    )


def script_checks(path: str) -> tuple[str, ...]:
    """A rendered shell script is checked by bash's parser and, where installed, shellcheck."""
    quoted = shell_quote(path)
    return (
        f'bash -n "$STAGE"{quoted}',
        f'if command -v shellcheck >/dev/null 2>&1; then shellcheck "$STAGE"{quoted}; fi',
    )


def _service(tunnel_unit: str) -> bytes:
    """Runs enable once the tunnel is up (the table-100 route needs the interface), and again
    whenever the tunnel restarts (Requires= restarts it along); after Docker, whose
    DOCKER-USER chain the home side fills when it exists."""
    return systemd.oneshot(
        "Mailgate SMTP egress through the WireGuard gateway",
        SCRIPT,
        ordering=[f"Requires={tunnel_unit}", f"After={tunnel_unit} docker.service"],
    )


def _ipv4_network(value: str, peer: TunnelPeer) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value)
    except ValueError:
        raise RenderError(
            f"SMTP egress of {peer.host.name} needs an IPv4 routed subnet, not {value!r}."
        ) from None


def _ipv4_address(value, peer: TunnelPeer) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise RenderError(
            f"SMTP egress of {peer.host.name} needs an IPv4 tunnel address, not {value!r}."
        ) from None


def _by_host_name(peer: TunnelPeer) -> str:
    return peer.host.name
