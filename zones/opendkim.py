"""DKIM signing on a Postfix + Dovecot mail server: OpenDKIM as a milter of Postfix.

Two bundle contributions (registered in ``ZonesConfig.ready``), both of the signing keys only:

- ``units``: ``/etc/opendkim.conf`` (the path Debian's ``opendkim.service`` starts with), a
  KeyTable and a SigningTable that map each domain to the key that signs it now, and that key
  (mode 0600, owned by ``opendkim``: OpenDKIM refuses a key others can read). A key that is only
  published, not yet signing, is not on the host at all; once it signs, the previous key's file
  leaves the bundle and the deployment removes it.
- ``postfix_settings``: the milter lines of Postfix's ``main.cf`` (``smtpd_milters`` for the
  submission ports, ``non_smtpd_milters`` for mail made on the host). ``hosts.render.postfix``
  writes ``main.cf`` and merges them (``gateway.bundle.contributed_settings``).

OpenDKIM signs mail from clients that logged in (587 and 465 require it) and from the host
itself (its default InternalHosts: ``sendmail`` and the loopback listener), whose From domain is
in the SigningTable. Mail from other servers on port 25 never reaches it (``master.cf`` gives
that service no milter), so no address a forged PROXY header claims gets a signature. It only
signs (``Mode s``): judging inbound signatures is the spam filter's work, and would cost a DNS
query per received message.
"""

from gateway.bundle import File, Unit
from gateway.writers import key_values, shell_quote, table
from hosts.choices import MailBackend
from hosts.render import systemd
from zones import dkim
from zones.selectors import signing_keys

CONFIG = "/etc/opendkim.conf"
TABLES_DIR = "/etc/opendkim/mailgate"
KEY_TABLE = f"{TABLES_DIR}/KeyTable"
SIGNING_TABLE = f"{TABLES_DIR}/SigningTable"
KEYS_DIR = f"{TABLES_DIR}/keys"
OWNER = "opendkim:opendkim"
# A TCP socket on loopback, not a Unix one: Postfix's smtpd runs chrooted in its spool, where
# /run/opendkim is out of reach, and a port needs no shared directory or group.
PORT = 8891
SOCKET = f"inet:{PORT}@127.0.0.1"
MILTER = f"inet:127.0.0.1:{PORT}"


def units(ctx) -> list[Unit]:
    keys = _signing_keys(ctx)
    if not keys:
        return []
    key_files = [
        File(key_path(key), dkim.signing_pem(key), mode=0o600, owner=OWNER, secret=True)
        for key in keys
    ]
    return [
        Unit(
            name="opendkim",
            files=(
                File(CONFIG, key_values(config(), separator=" ")),
                File(KEY_TABLE, table((key.record_name, _key_entry(key)) for key in keys)),
                File(SIGNING_TABLE, table((key.domain.name, key.record_name) for key in keys)),
                *key_files,
            ),
            checks=(_check_script(),),
            activate=(systemd.enable_now("opendkim"), systemd.reload("opendkim")),
        )
    ]


def postfix_settings(ctx) -> list[tuple[str, str]]:
    if not _signing_keys(ctx):
        return []
    return [
        ("smtpd_milters", MILTER),
        ("non_smtpd_milters", "$smtpd_milters"),
        # Mail still flows, unsigned, while OpenDKIM restarts or is down: better than
        # rejecting every submission.
        ("milter_default_action", "accept"),
        ("milter_protocol", "6"),
    ]


def config() -> list[tuple[str, str]]:
    return [
        # OpenDKIM logs only through syslog(3). On a host with systemd that is the journal;
        # where nothing listens on /dev/log (a container, the lab's namespaces) the messages
        # are dropped and signing works all the same.
        ("Syslog", "yes"),
        ("SyslogSuccess", "yes"),
        ("UserID", "opendkim"),
        ("UMask", "007"),
        ("PidFile", "/run/opendkim/opendkim.pid"),  # where Debian's unit waits for it
        ("Socket", SOCKET),
        ("Mode", "s"),
        ("Canonicalization", "relaxed/simple"),
        ("OversignHeaders", "From"),  # a second From added in transit breaks the signature
        ("KeyTable", f"file:{KEY_TABLE}"),
        ("SigningTable", f"file:{SIGNING_TABLE}"),
    ]


def key_path(key) -> str:
    return f"{KEYS_DIR}/{key.domain.name}.{key.selector}.private"


def _key_entry(key) -> str:
    return f"{key.domain.name}:{key.selector}:{key_path(key)}"


def _signing_keys(ctx) -> list:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT):
        return []
    return signing_keys(ctx)


def _check_script() -> str:
    """``opendkim -n`` parses the configuration and opens its tables; here a scratch copy
    names the staged tables instead of the live ones (it does not open the keys)."""
    live, staged = shell_quote(f"file:{TABLES_DIR}/"), f'"file:$STAGE"{shell_quote(TABLES_DIR)}/'
    return "\n".join(
        [
            "set -eu",
            'scratch="$(mktemp -d)"',
            "trap 'rm -rf \"$scratch\"' EXIT",
            f"live={live}; staged={staged}",
            "while IFS= read -r line; do",
            '  printf "%s\\n" "${line/"$live"/"$staged"}"',
            f'done < "$STAGE"{shell_quote(CONFIG)} > "$scratch/opendkim.conf"',
            'opendkim -n -x "$scratch/opendkim.conf"',
        ]
    )
