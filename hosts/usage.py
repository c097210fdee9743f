"""What the mail servers count for each mailbox: the storage in use, read over SSH from
Dovecot's ``doveadm quota get`` (Postfix + Dovecot) or Mailu's own count (``quota_bytes_used``
in its admin database, which its Dovecot keeps up to date), shown beside the quota; and when
each device password last logged in over IMAP, from the file dict Dovecot's last_login plugin
writes (Postfix + Dovecot only: Mailu records no use of its tokens)."""

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


# The dict is missing until the first IMAP login with a device password.
LAST_USE_COMMANDS = {
    MailBackend.POSTFIX_DOVECOT: f"cat {shell_quote(LAST_LOGIN)} 2>/dev/null || true"
}
# Dovecot's last_login plugin puts its key in the dict's shared namespace.
_LAST_LOGIN_PREFIX = f"shared/{LAST_LOGIN_KEY}"


def parse_last_login(text: str) -> dict[int, datetime]:
    """Dovecot's file dict: a key line, then its value line; the keys of device passwords are
    ``shared/mailgate-device/<row>``, their values seconds since the epoch."""
    lines = text.splitlines()
    used = {}
    for key, value in zip(lines[::2], lines[1::2], strict=False):
        row = key.removeprefix(_LAST_LOGIN_PREFIX)
        if key.startswith(_LAST_LOGIN_PREFIX) and row.isdigit() and value.isdigit():
            used[int(row)] = datetime.fromtimestamp(int(value), tz=UTC)
    return used
