"""What the mail servers count for each mailbox: the storage in use, read over SSH from
Dovecot's ``doveadm quota get`` (Postfix + Dovecot) or Mailu's own count (``quota_bytes_used``
in its admin database, which its Dovecot keeps up to date), shown beside the quota; and when
each device password last logged in: over IMAP, from the file dict Dovecot's last_login plugin
writes (Postfix + Dovecot), or from the line Mailu's admin logs for each login with a token,
which names the user and the token's comment (Mailgate's name of the device password)."""

import ast
import re
from datetime import UTC, datetime

from gateway.writers import shell_quote
from hosts.choices import MailBackend
from hosts.render.dovecot import LAST_LOGIN, LAST_LOGIN_KEY
from hosts.render.mailu import COMPOSE_PATH

KIB = 1024  # doveadm gives STORAGE in kibibytes
DOVEADM = "doveadm -f tab quota get -A"
MAILU = (
    f"docker compose -f {shell_quote(COMPOSE_PATH)} exec -T admin python3 -c "
    "'from mailu import create_app, models\n"
    "with create_app().app_context():\n"
    '    for user in models.User.query.all(): print(user.email, user.quota_bytes_used, sep="\\t")\''
)
COMMANDS = {MailBackend.POSTFIX_DOVECOT: DOVEADM, MailBackend.MAILU: MAILU}


def parse_doveadm(output: str) -> dict[str, int]:
    """``doveadm -f tab quota get -A``: a header, then user, quota name, type, value, limit, %."""
    used = {}
    for line in output.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) >= 4 and fields[2] == "STORAGE" and fields[3].isdigit():
            used[fields[0]] = used.get(fields[0], 0) + int(fields[3]) * KIB
    return used


def parse_mailu(output: str) -> dict[str, int]:
    """One ``address<TAB>bytes`` line per Mailu user."""
    pairs = (line.split("\t") for line in output.splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].isdigit()}


PARSERS = {MailBackend.POSTFIX_DOVECOT: parse_doveadm, MailBackend.MAILU: parse_mailu}


# A device password as a mail server names it: its row (Dovecot's dict), or its mailbox's
# address and its name (Mailu's log, where token ids change with every import).
DeviceRef = int | tuple[str, str]
# Dovecot's last_login plugin puts its key in the dict's shared namespace.
_LAST_LOGIN_PREFIX = f"shared/{LAST_LOGIN_KEY}"
# Mailu's admin (core/admin/mailu/internal/nginx.py, 2024.06) under Flask's default format, in
# the container's time zone (UTC, Mailu's default TZ).
_MAILU_LOGIN = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\] INFO in \w+: Login attempt for: "
    r"(?P<user>[^/\s]+)/\w+/\S+ from: \S+: success: token-\d+: (?P<comment>'.*'|\".*\")$"
)
# Two days: the beat reads them every hour, and an older login is older than the one kept.
MAILU_LOG_WINDOW = "48h"


def parse_last_login(text: str) -> dict[DeviceRef, datetime]:
    """Dovecot's file dict: a key line, then its value line; the keys of device passwords are
    ``shared/mailgate-device/<row>``, their values seconds since the epoch."""
    lines = text.splitlines()
    used: dict[DeviceRef, datetime] = {}
    for key, value in zip(lines[::2], lines[1::2], strict=False):
        row = key.removeprefix(_LAST_LOGIN_PREFIX)
        if key.startswith(_LAST_LOGIN_PREFIX) and row.isdigit() and value.isdigit():
            used[int(row)] = datetime.fromtimestamp(int(value), tz=UTC)
    return used


def parse_mailu_log(text: str) -> dict[DeviceRef, datetime]:
    """The last successful login with each token that Mailu's admin logged (the comment is
    printed as a Python literal)."""
    used: dict[DeviceRef, datetime] = {}
    for line in text.splitlines():
        if not (found := _MAILU_LOGIN.match(line.strip())):
            continue
        try:
            comment = ast.literal_eval(found["comment"])
        except (ValueError, SyntaxError):
            continue
        at = datetime.strptime(found["at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        key = (found["user"].lower(), comment)
        used[key] = max(at, used.get(key, at))
    return used


# The dict is missing until the first IMAP login with a device password.
_DOVECOT_LAST_USE = f"cat {shell_quote(LAST_LOGIN)} 2>/dev/null || true"
_MAILU_LAST_USE = (
    f"docker compose -f {shell_quote(COMPOSE_PATH)} logs --no-color --no-log-prefix "
    f"--since {MAILU_LOG_WINDOW} admin"
)
LAST_USE = {
    MailBackend.POSTFIX_DOVECOT: (_DOVECOT_LAST_USE, parse_last_login),
    MailBackend.MAILU: (_MAILU_LAST_USE, parse_mailu_log),
}
