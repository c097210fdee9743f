"""The mail server's guard: only the gateway reaches the services that read a PROXY v2 header.

Postfix believes the client address any PROXY header names, and has no list of trusted proxies
(Dovecot has one, ``haproxy_trusted_networks``, but the rule is kept in one place for both).
Listening on the tunnel address alone is not enough: Linux accepts a packet for any of its
addresses on any interface, so a machine on the home LAN can route the tunnel address through
the server's LAN address, and another spoke reaches it through the hub. So a filter chain sends
every new connection to those ports to ``REJECT`` unless it comes in through the tunnel from
the hub's tunnel address (or from the host itself, over loopback).

``/usr/local/sbin/mailgate-mail-guard`` (``enable|disable|verify``, idempotent) replaces its
chain atomically with ``iptables-restore --noflush``, for both address families (the family the
tunnel does not use rejects everyone), and a oneshot unit runs it before Postfix and Dovecot
start, so the rules survive a reboot.
"""

import ipaddress

from gateway.bundle import File, RenderError, Unit
from gateway.writers import lines, shell_quote
from hosts.choices import MailBackend
from hosts.render import systemd
from hosts.render.context import RenderContext
from hosts.render.dovecot import IMAPS_PORT
from hosts.render.egress import script_checks
from hosts.render.postfix import PROXIED_SERVICES

SCRIPT = "/usr/local/sbin/mailgate-mail-guard"
SERVICE = "mailgate-mail-guard.service"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE}"
CHAIN = "MAILGATE-MAIL-GUARD"
PORTS = (*sorted(PROXIED_SERVICES), IMAPS_PORT)

BODY = r"""
JUMP=(! -i lo -p tcp -m multiport --dports "$PORTS" -j "$CHAIN")

# The chain's rules as arguments after "-A $CHAIN", one per line: who passes, then the rest.
rules() {
  local hub="$1"
  if [ -n "$hub" ]; then echo "-i $WG_IF -s $hub -j RETURN"; fi
  echo "-p tcp -j REJECT --reject-with tcp-reset"
}

# As iptables-restore reads it: declaring the chain empties it, COMMIT swaps it in at once.
restore_input() {
  local rule
  echo "*filter"
  echo ":$CHAIN - [0:0]"
  while read -r rule; do echo "-A $CHAIN $rule"; done < <(rules "$1")
  echo "COMMIT"
}

# Each family with the hub's address in it, or none: then nobody passes.
families() {
  echo "iptables ${HUB_IPV4}"
  echo "ip6tables ${HUB_IPV6}"
}

usable() {
  "$1" -w -n -L INPUT >/dev/null 2>&1
}

enable() {
  local ipt hub
  while read -r ipt hub; do
    if ! usable "$ipt"; then
      echo "warning: $ipt is not usable here; that family is left as it is" >&2
      continue
    fi
    restore_input "$hub" | "$ipt-restore" -w --noflush
    "$ipt" -w -C INPUT "${JUMP[@]}" 2>/dev/null || "$ipt" -w -I INPUT 1 "${JUMP[@]}"
  done < <(families)
  echo "Enabled: ports $PORTS reach this host only from $HUB_IPV4$HUB_IPV6 through $WG_IF."
}

disable() {
  local ipt hub
  while read -r ipt hub; do
    usable "$ipt" || continue
    while "$ipt" -w -D INPUT "${JUMP[@]}" 2>/dev/null; do :; done
    "$ipt" -w -F "$CHAIN" 2>/dev/null || true
    "$ipt" -w -X "$CHAIN" 2>/dev/null || true
  done < <(families)
  echo "Disabled: the mail guard."
}

verify() {
  local ipt hub rule expected missing=0
  while read -r ipt hub; do
    usable "$ipt" || continue
    if ! "$ipt" -w -C INPUT "${JUMP[@]}" 2>/dev/null; then
      echo "MISSING  $ipt INPUT jump to $CHAIN"
      missing=$((missing + 1))
    fi
    expected=0
    while read -r rule; do
      expected=$((expected + 1))
      # shellcheck disable=SC2086 # a rule is its words
      if ! "$ipt" -w -C "$CHAIN" $rule 2>/dev/null; then
        echo "MISSING  $ipt $CHAIN $rule"
        missing=$((missing + 1))
      fi
    done < <(rules "$hub")
    if [ "$("$ipt" -w -S "$CHAIN" 2>/dev/null | grep -c '^-A')" != "$expected" ]; then
      echo "EXTRA    $ipt $CHAIN holds rules enable did not write"
      missing=$((missing + 1))
    fi
  done < <(families)
  if [ "$missing" -gt 0 ]; then
    echo "$missing part(s) of the mail guard are missing." >&2
    exit 1
  fi
  echo "The mail guard is in place."
}

case "${1:-}" in
  enable) enable ;;
  disable) disable ;;
  verify) verify ;;
  *)
    echo "Usage: ${0##*/} {enable|disable|verify}" >&2
    exit 2
    ;;
esac
"""


def units(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT):
        return []
    quoted = shell_quote(SCRIPT)
    return [
        Unit(
            name="mail-guard",
            files=(File(SCRIPT, script(ctx), mode=0o755), File(SERVICE_PATH, _service())),
            checks=script_checks(SCRIPT),
            # Before Postfix and Dovecot reload, so the new listeners are never unguarded.
            activate=(systemd.enable_now(SERVICE), f"{quoted} enable"),
        )
    ]


def script(ctx: RenderContext) -> bytes:
    hub = ctx.gateway
    try:
        address = ipaddress.ip_address(hub.tunnel_address if hub else "")
    except ValueError:
        raise RenderError(
            f"{ctx.host} reads the gateway's PROXY header, so it must be a spoke of a tunnel "
            "whose hub has a tunnel address."
        ) from None
    variables = [
        ("WG_IF", ctx.spoke_of.tunnel.interface),
        ("HUB_IPV4", address if address.version == 4 else ""),
        ("HUB_IPV6", address if address.version == 6 else ""),
        ("PORTS", ",".join(str(port) for port in PORTS)),
        ("CHAIN", CHAIN),
    ]
    top = [
        "# Only the gateway reaches the services that read a PROXY v2 header.",
        f"# Usage: {SCRIPT} {{enable|disable|verify}}",
        "set -Eeuo pipefail",
        "",
        *(f"{name}={shell_quote(value)}" for name, value in variables),
    ]
    return b"#!/usr/bin/env bash\n" + lines(top) + BODY.encode()


def _service() -> bytes:
    return systemd.oneshot(
        "Mailgate mail guard: only the gateway reaches the PROXY ports",
        SCRIPT,
        ordering=["Before=postfix.service dovecot.service"],
    )
