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
