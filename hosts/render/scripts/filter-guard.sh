# A guard: filter chains of Mailgate's own, declared whole by the top of the script (GUARD,
# CHAINS, and per family IPV4_RULES/IPV4_JUMPS, IPV6_RULES/IPV6_JUMPS). A rule is
# "CHAIN words...", a jump "HOOK words... -j CHAIN", each a line's words with no quoting.
# A jump from FORWARD goes into Docker's DOCKER-USER chain too where Docker made it: Docker
# puts its own accepting rules first in FORWARD, DOCKER-USER before them.

# Each argument on a line of its own; nothing at all for none.
each() {
  if [ "$#" -gt 0 ]; then printf '%s\n' "$@"; fi
}

# A family's (IPV4 or IPV6) rules and jumps, one per line.
rules_of() {
  case "$1" in
    IPV4) each "${IPV4_RULES[@]}" ;;
    IPV6) each "${IPV6_RULES[@]}" ;;
  esac
}

declared_jumps() {
  case "$1" in
    IPV4) each "${IPV4_JUMPS[@]}" ;;
    IPV6) each "${IPV6_JUMPS[@]}" ;;
  esac
}

# As iptables-restore reads it: declaring a chain empties it, COMMIT swaps them in at once.
restore_input() {
  local chain rule
  echo "*filter"
  for chain in "${CHAINS[@]}"; do echo ":$chain - [0:0]"; done
  while read -r rule; do echo "-A $rule"; done < <(rules_of "$1")
  echo "COMMIT"
}

# "iptables IPV4" and "ip6tables IPV6": each tool with the prefix of its arrays.
families() {
  echo "iptables IPV4"
  echo "ip6tables IPV6"
}

usable() {
  "$1" -w -n -L INPUT >/dev/null 2>&1
}

# Each jump as "HOOK words...": FORWARD's once more for DOCKER-USER where that chain exists.
jumps_of() {
  local ipt="$1" jump
  while read -r jump; do
    echo "$jump"
    if [ "${jump%% *}" = FORWARD ] && "$ipt" -w -n -L DOCKER-USER >/dev/null 2>&1; then
      echo "DOCKER-USER ${jump#* }"
    fi
  done < <(declared_jumps "$2")
}

enable() {
  local ipt family hook words
  while read -r ipt family; do
    if ! usable "$ipt"; then
      echo "warning: $ipt is not usable here; that family is left as it is" >&2
      continue
    fi
    restore_input "$family" | "$ipt-restore" -w --noflush
    while read -r hook words; do
      # shellcheck disable=SC2086 # a jump is its words
      "$ipt" -w -C "$hook" $words 2>/dev/null || "$ipt" -w -I "$hook" 1 $words
    done < <(jumps_of "$ipt" "$family")
  done < <(families)
  echo "Enabled: the $GUARD."
}

disable() {
  local ipt family hook words chain
  while read -r ipt family; do
    usable "$ipt" || continue
    while read -r hook words; do
      # shellcheck disable=SC2086 # a jump is its words
      while "$ipt" -w -D "$hook" $words 2>/dev/null; do :; done
    done < <(jumps_of "$ipt" "$family")
    for chain in "${CHAINS[@]}"; do
      "$ipt" -w -F "$chain" 2>/dev/null || true
      "$ipt" -w -X "$chain" 2>/dev/null || true
    done
  done < <(families)
  echo "Disabled: the $GUARD."
}

# Prints a line for each part of one family that is missing, or more than enable wrote.
verify_family() {
  local ipt="$1" hook words chain rule expected
  while read -r hook words; do
    # shellcheck disable=SC2086 # a jump is its words
    "$ipt" -w -C "$hook" $words 2>/dev/null || echo "MISSING  $ipt $hook $words"
  done < <(jumps_of "$ipt" "$2")
  for chain in "${CHAINS[@]}"; do
    expected=0
    while read -r rule; do
      [ "${rule%% *}" = "$chain" ] || continue
      expected=$((expected + 1))
      # shellcheck disable=SC2086 # a rule is its words
      "$ipt" -w -C $rule 2>/dev/null || echo "MISSING  $ipt $rule"
    done < <(rules_of "$2")
    if [ "$("$ipt" -w -S "$chain" 2>/dev/null | grep -c '^-A')" != "$expected" ]; then
      echo "EXTRA    $ipt $chain holds rules enable did not write"
    fi
  done
}

verify() {
  local ipt family report="" missing
  while read -r ipt family; do
    usable "$ipt" || continue
    report+="$(verify_family "$ipt" "$family")"$'\n'
  done < <(families)
  missing="$(grep -c . <<<"$report" || true)"
  if [ "$missing" -gt 0 ]; then
    printf '%s' "$report" | grep .
    echo "$missing part(s) of the $GUARD are missing." >&2
    exit 1
  fi
  echo "The $GUARD is in place."
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
