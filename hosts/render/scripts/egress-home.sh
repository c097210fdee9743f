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
# its route, so that any prefix length works (the Mailu-behind-Traefik guide's script,
# docs/reference-setups.md, matched the first three octets).
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
