"""The lab hosts' ``systemctl``: systemd cannot run in a network namespace, so this stand-in,
installed as /usr/local/sbin/systemctl (ahead of the real one in root's PATH), starts, reloads and
stops the programs of the reference setup (docs/reference-setups.md) directly, the way their systemd
units would. Mailgate's activation steps call it unchanged. Every call is logged to
/var/log/mailgate-lab/systemctl.log; a unit it does not know fails loudly."""

SYSTEMCTL = r"""#!/bin/bash
# Mailgate lab: stands in for systemd's systemctl inside a network namespace.
set -euo pipefail
mkdir -p /var/log/mailgate-lab
echo "$(date -Is) systemctl $*" >> /var/log/mailgate-lab/systemctl.log

export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
HAPROXY_PID=/run/haproxy/haproxy.pid
NGINX_PID=/run/mailgate-lab/nginx.pid  # the lab moves it out of the /run that hosts share
POSTSRSD_PID=/run/mailgate-lab/postsrsd.pid  # its unit runs it in the foreground: no pid file

alive() { [ -e "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ended() {  # PIDFILE: stop the process and wait until it is gone, as systemd does
  local pid; pid="$(cat "$1")"
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

running() {  # UNIT
  case "$1" in
    postfix) postfix status >/dev/null 2>&1 ;;
    dovecot) alive /run/dovecot/master.pid ;;
    haproxy) alive "$HAPROXY_PID" ;;
    nginx) alive "$NGINX_PID" ;;
    opendkim) alive /run/opendkim/opendkim.pid ;;
    postsrsd) alive "$POSTSRSD_PID" ;;
    wg-quick@*) ip link show dev "${1#wg-quick@}" >/dev/null 2>&1 ;;
    *) [ -e "/run/mailgate-lab/$1.active" ] ;;
  esac
}

start() {  # UNIT
  running "$1" && return 0
  case "$1" in
    postfix) /usr/lib/postfix/configure-instance.sh - && postfix start ;;
    dovecot) dovecot ;;
    haproxy) mkdir -p /run/haproxy && haproxy -D -W -f /etc/haproxy/haproxy.cfg -p "$HAPROXY_PID" ;;
    nginx) nginx ;;
    opendkim) install -d -o opendkim -g opendkim /run/opendkim && opendkim -x /etc/opendkim.conf ;;
    # Debian's unit: its launcher reads /etc/default/postsrsd and execs postsrsd.
    postsrsd) setsid /usr/share/postsrsd/postsrsd-systemd-launcher </dev/null >/dev/null 2>&1 &
      echo $! > "$POSTSRSD_PID" ;;
    wg-quick@*) wg-quick up "${1#wg-quick@}" ;;
    *) exec_line "$1" ExecStart && touch "/run/mailgate-lab/$1.active" ;;
  esac
}

stop() {  # UNIT
  running "$1" || return 0
  case "$1" in
    postfix) postfix stop ;;
    dovecot) doveadm stop ;;
    haproxy) kill "$(cat "$HAPROXY_PID")" ;;
    nginx) nginx -s quit ;;
    opendkim) ended /run/opendkim/opendkim.pid ;;
    postsrsd) ended "$POSTSRSD_PID" ;;
    wg-quick@*) wg-quick down "${1#wg-quick@}" ;;
    *) exec_line "$1" ExecStop && rm -f "/run/mailgate-lab/$1.active" ;;
  esac
}

reload() {  # UNIT
  running "$1" || { start "$1"; return; }
  case "$1" in
    postfix) postfix reload ;;
    dovecot) doveadm reload ;;
    haproxy) kill -USR2 "$(cat "$HAPROXY_PID")" ;;
    nginx) nginx -s reload ;;
    *) stop "$1" && start "$1" ;;
  esac
}

exec_line() {  # UNIT KEY: run the unit file's ExecStart= or ExecStop= lines
  local file="/etc/systemd/system/$1"
  [ -e "$file" ] || file="$file.service"
  [ -e "$file" ] || { echo "lab systemctl: no unit $1" >&2; return 5; }
  sed -n "s/^$2=-\{0,1\}//p" "$file" | while read -r line; do bash -c "$line"; done
}

unit_name() { local name="${1%.service}"; echo "$name"; }

command="${1:-}"; shift || true
now=""
units=()
for argument in "$@"; do
  case "$argument" in
    --now) now=yes ;;
    -*) ;;
    *) units+=("$(unit_name "$argument")") ;;
  esac
done
case "$command" in
  daemon-reload) ;;
  enable) if [ -n "$now" ]; then for u in "${units[@]}"; do start "$u"; done; fi ;;
  disable) if [ -n "$now" ]; then for u in "${units[@]}"; do stop "$u"; done; fi ;;
  start) for u in "${units[@]}"; do start "$u"; done ;;
  stop) for u in "${units[@]}"; do stop "$u"; done ;;
  restart) for u in "${units[@]}"; do stop "$u"; start "$u"; done ;;
  try-restart) for u in "${units[@]}"; do if running "$u"; then stop "$u"; start "$u"; fi; done ;;
  reload|reload-or-restart) for u in "${units[@]}"; do reload "$u"; done ;;
  is-active) for u in "${units[@]}"; do running "$u" || exit 3; done ;;
  *) echo "lab systemctl: '$command' is not supported here" >&2; exit 1 ;;
esac
"""
