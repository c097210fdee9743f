"""What the deploy engine runs on a host: the layout of a deployment's folder there, the
one-command survey of the host, and the transaction script that swaps the files in.

The transaction runs on the host itself, detached from the SSH session (``setsid``), so a cut
connection cannot stop it half-way. It backs up what it replaces, renames each new file into
place (a rename is atomic), activates, verifies with the units' own checks against the live
files, and then waits for Mailgate's *commit*. Without a commit in time, because the connection
or Mailgate died, or because the change cut the host off, it restores the previous files and
re-activates them by itself: the host ends with all old or all new files, never a mix.
"""

import shlex

from gateway.bundle import Unit
from gateway.writers import shell_quote

ROOT = "/var/lib/mailgate/deployments"
COMMIT_WAIT = 30  # seconds the host waits for Mailgate's commit before rolling back
FINAL_STATES = ("committed", "rolled-back", "failed")


def folder(deployment_id: int) -> str:
    return f"{ROOT}/{deployment_id}"


def survey_command() -> str:
    """Read NUL-separated paths on stdin; print ``sha256  path`` for each that exists, then the
    state of every deployment folder on the host (all in one round trip)."""
    return (
        "xargs -0 -r sha256sum -- 2>/dev/null; echo '#deployments'; "
        f'for d in {ROOT}/*/; do [ -d "$d" ] || continue; '
        'printf "%s %s\\n" "$(basename "$d")" "$(cat "$d/state" 2>/dev/null || echo staged)"; '
        "done; true"
    )


def parse_survey(output: str) -> tuple[dict[str, str], dict[int, str]]:
    hashes, states = {}, {}
    lines = iter(output.splitlines())
    for line in lines:
        if line == "#deployments":
            break
        digest, _, path = line.partition("  ")
        hashes[path] = digest
    for line in lines:
        number, _, state = line.partition(" ")
        if number.isdigit():
            states[int(number)] = state
    return hashes, states


def step_script(units: list[Unit], commands: str) -> str:
    """A script that runs each unit's ``commands`` ("checks" or "activate") in order, saying
    which it runs, and stops at the first failure."""
    body = ["set -u"]
    for unit in units:
        for command in getattr(unit, commands):
            body.append(f"echo {shell_quote(f'+ [{unit.name}] {_summary(command)}')}")
            body.append(f"( {command}\n) || exit 1")
    return "\n".join(body) + "\n"


def _summary(command: str) -> str:
    lines = command.splitlines()
    return lines[0] if len(lines) == 1 else f"a {len(lines)}-line script"


# The transaction. Arguments: the deployment folder and the commit wait in seconds. The folder
# holds files/<path> (the new files), manifest (path, mode, owner per line, tab-separated),
# delete (paths to remove), activate.sh and verify.sh.
TRANSACTION = r"""#!/bin/bash
set -u
D="$1"
WAIT="$2"
state() { printf '%s\n' "$1" > "$D/state.new" && mv -f "$D/state.new" "$D/state"; }
say() { printf '%s\n' "$*"; }

targets() { cut -f1 "$D/manifest"; cat "$D/delete"; }

backup() {
  : > "$D/created"
  targets | while IFS= read -r path; do
    if [ -e "$path" ]; then
      mkdir -p "$D/backup$(dirname "$path")" && cp -a "$path" "$D/backup$path" || return 1
    else
      printf '%s\n' "$path" >> "$D/created"
    fi
  done
}

# Every new file is dated two seconds back: Postfix waits, a second at a time, until its
# main.cf is more than a second old before it reads it (util/dict_load_file.c), which cost each
# Postfix command of the activation up to 2 s.
STAMP="@$(($(date +%s) - 2))"

put() {  # put SOURCE PATH MODE OWNER: copy beside the target, then rename over it
  local tmp
  tmp="$(dirname "$2")/.mailgate-new.$(basename "$2")"
  mkdir -p "$(dirname "$2")" && cp "$1" "$tmp" && chmod "$3" "$tmp" && chown "$4" "$tmp" \
    && touch -m -d "$STAMP" "$tmp" && mv -f "$tmp" "$2"
}

swap() {
  while IFS=$'\t' read -r path mode owner; do
    put "$D/files$path" "$path" "$mode" "$owner" || { say "cannot install $path"; return 1; }
  done < "$D/manifest"
  while IFS= read -r path; do rm -f "$path"; done < "$D/delete"
}

restore() {
  say "+ restoring the previous files"
  targets | while IFS= read -r path; do
    if [ -e "$D/backup$path" ]; then
      tmp="$(dirname "$path")/.mailgate-old.$(basename "$path")"
      cp -a "$D/backup$path" "$tmp" && mv -f "$tmp" "$path"
    elif grep -qxF "$path" "$D/created"; then
      rm -f "$path"
    fi
  done
  if [ -d "$D/backup" ]; then
    say "+ activating the previous files"
    bash "$D/activate.sh" || say "re-activating the previous files failed: check the host"
  else
    say "+ there were no previous files to activate"
  fi
  state rolled-back
  exit 1
}

state applying
say "+ backing up the files to replace"
backup || { say "backup failed; nothing was changed"; state failed; exit 1; }
say "+ putting the new files in place"
swap || restore
say "+ activating"
bash "$D/activate.sh" || restore
say "+ verifying the live files"
STAGE='' bash "$D/verify.sh" || restore
state applied
say "+ waiting for Mailgate to confirm (up to ${WAIT}s)"
for _ in $(seq $((WAIT * 50))); do
  if [ -e "$D/commit" ]; then say "+ committed"; state committed; exit 0; fi
  sleep 0.02
done
say "no confirmation from Mailgate: rolling back"
restore
"""


# A deployment in one conversation (``apply_command``), so that it costs one command on the host:
# it reads the paths to survey (their size in bytes on a line, then the NUL-separated paths) and
# answers as ``survey_command`` does; then, unless Mailgate hangs up because nothing changes, it
# reads the staged archive (its size on a line, then the tar), unpacks it with copies of the
# affected units' unchanged files, runs the checks, starts the transaction detached, and streams
# the transaction's log. Each step's end is a marker line (``MARK`` and a state): surveyed,
# stage-failed, check-failed, checked, then the transaction's states; on "applied" it waits for
# Mailgate's "commit" line. Arguments: the deployment folder and the commit wait in seconds.
MARK = "\x1e"  # ASCII record separator, removed from the log it streams
APPLY = r"""set -u
D="$1"
WAIT="$2"
mark() { printf '\n\036%s\n' "$1"; }
read -r size || exit 0
head -c "$size" | { @SURVEY@; }
mark surveyed
read -r size || exit 0
staged() (  # a subshell: the staged copy is private; the checks and activation keep the umask
  # Only the deployments' folder is private: the folders above it are made with the host's umask,
  # since nginx's workers read the WKD tree and the ACME challenges in /var/lib/mailgate.
  mkdir -p "${D%/*/*}" || exit 1
  umask 077
  rm -rf "$D" && mkdir -p "$D" && head -c "$size" > "$D/archive.tar" \
    && tar -x -C "$D" -f "$D/archive.tar" && rm -f "$D/archive.tar" || exit 1
  while IFS= read -r path; do
    mkdir -p "$D/files$(dirname "$path")" && cp -p "$path" "$D/files$path" || exit 1
  done < "$D/keep"
)
staged 2>&1 || { rm -rf "$D"; mark stage-failed; exit 1; }
STAGE="$D/files" bash "$D/verify.sh" 2>&1 || { rm -rf "$D"; mark check-failed; exit 1; }
mark checked
# Appending: programs that reopen /dev/stdout (Postfix's maillog_file) must not write over the
# log from its start.
setsid nohup bash "$D/transaction.sh" "$D" "$WAIT" >> "$D/log" 2>&1 < /dev/null &
offset=0
state=starting
while :; do
  if [ ! -d "$D" ]; then  # removed under the transaction: it cannot finish, nor roll back
    echo "the deployment's folder $D disappeared while it ran: check the host"
    mark failed
    exit 1
  fi
  now="$(cat "$D/state" 2>/dev/null || echo starting)"
  end="$(stat -c %s "$D/log" 2>/dev/null || echo 0)"
  if [ "$end" -gt "$offset" ]; then
    tail -c +$((offset + 1)) "$D/log" | head -c $((end - offset)) | tr -d '\036'
    offset="$end"
  fi
  if [ "$now" != "$state" ]; then
    state="$now"
    mark "$state"
    case "$state" in
      applied) read -r -t "$WAIT" answer && [ "$answer" = commit ] && touch "$D/commit" ;;
      committed | rolled-back | failed) rm -rf "$D"; exit 0 ;;
    esac
  fi
  sleep 0.02
done
""".replace("@SURVEY@", survey_command())


def apply_command(deployment_id: int) -> str:
    # shlex.quote, not shell_quote: the script is Mailgate's own and spans lines by design.
    return (
        f"bash -c {shlex.quote(APPLY)} mailgate-apply "
        f"{shell_quote(folder(deployment_id))} {COMMIT_WAIT}"
    )


def framed(data: bytes) -> bytes:
    """``data`` as ``APPLY`` reads it: its size on a line, then the bytes."""
    return f"{len(data)}\n".encode() + data


def follow_command(deployment_id: int, offset: int) -> str:
    """The transaction's state, then its log from byte ``offset`` on."""
    where = shell_quote(folder(deployment_id))
    return f"cat {where}/state 2>/dev/null || echo starting; tail -c +{offset + 1} {where}/log"
