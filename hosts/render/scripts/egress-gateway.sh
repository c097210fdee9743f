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
    # Left on by disable, as in the Mailu-behind-Traefik guide's script (docs/reference-setups.md):
    # the hub routes between its spokes as well.
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
