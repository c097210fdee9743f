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
