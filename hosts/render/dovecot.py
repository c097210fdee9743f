"""Dovecot on a Postfix + Dovecot mail server: IMAP over TLS behind the gateway's PROXY v2
header, LMTP delivery from Postfix, SASL for Postfix's submission ports, and the mailboxes in a
passwd-file whose hashes Dovecot verifies (``{BLF-CRYPT}``).

Each mailbox's own settings (docs/mailbox-features.md):
- which protocols may log in: a ``deny`` passdb first, a passwd-file per service (``%s``:
  ``imap``, ``pop3``; ``smtp`` for Postfix's SASL on 465/587) naming the mailboxes refused
  there (Dovecot denies nobody for a service without its file, so each is written);
- device passwords: after the mailbox passwords, one passwd-file passdb per slot (a mailbox's
  first device password in the first, ...), ``{SHA256-CRYPT}``; a failed passdb passes the
  login on to the next (``result_failure = continue``, Dovecot's default); an IMAP login with
  one is recorded by the ``last_login`` plugin under the password's row;
- forwarding and auto-reply: each mailbox's Sieve script (hosts/render/sieve.py), run by LMTP
  before any script of the user's own (``sieve_before``), compiled on activation by ``sievec``.

The rendered ``dovecot.conf`` is complete on its own (it includes nothing from ``conf.d``), so
what ``doveconf -n`` shows is exactly what Mailgate decided.
"""

from gateway.bundle import File, RenderError, Unit
from gateway.writers import lines, one_line, shell_quote
from hosts.choices import MailBackend
from hosts.render import sieve, systemd, tls
from hosts.render.context import RenderContext

CONFIG = "/etc/dovecot/dovecot.conf"
USERS = "/etc/dovecot/mailgate-users"
DENY_DIR = "/etc/dovecot/mailgate-deny"
DEVICES_DIR = "/etc/dovecot/mailgate-devices"
SIEVE_DIR = "/etc/dovecot/mailgate-sieve"
# Dovecot's service name for each protocol switch of a mailbox. POP3 is not served on Postfix +
# Dovecot (hosts.render.context.SERVED_PORTS); its file holds if it ever is.
DENIED_SERVICES = {"imap": "imap_enabled", "pop3": "pop3_enabled", "smtp": "smtp_enabled"}
VMAIL = "/var/vmail"
IMAPS_PORT = 993  # behind the gateway, with its PROXY v2 header
# Dovecot's default set plus "+" (gateway.validators allows it in a local part).
USERNAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@+"
LOCKED = "*"  # never a valid hash: a mailbox without a password cannot log in
# A device password's last use: its passdb line gives the userdb this field (the row's id), and
# Dovecot's last_login plugin writes the time of each IMAP login under it (``LAST_LOGIN_KEY``)
# into a file dict the mail processes (as vmail) may write; hosts/usage.py reads it back.
DEVICE_FIELD = "mailgate_device"
LAST_LOGIN = f"{VMAIL}/.mailgate-last-login"
LAST_LOGIN_KEY = "mailgate-device/"


def units(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT):
        return []
    return [
        Unit(
            name="dovecot",
            files=(
                File(CONFIG, lines(dovecot_conf(ctx))),
                File(USERS, lines(users(ctx)), mode=0o640, owner="root:dovecot", secret=True),
                *(
                    File(f"{DENY_DIR}/{service}", lines(names))
                    for service, names in denied(ctx).items()
                ),
                *(
                    File(
                        f"{DEVICES_DIR}/{slot}",
                        lines(rows),
                        mode=0o640,
                        owner="root:dovecot",
                        secret=True,
                    )
                    for slot, rows in device_slots(ctx).items()
                ),
                *(
                    File(f"{SIEVE_DIR}/{address}.sieve", content)
                    for address, content in sieve_scripts(ctx).items()
                ),
            ),
            checks=(
                f'doveconf -n -c "$STAGE"{shell_quote(CONFIG)} >/dev/null',
                _sieve_check(),
            ),
            activate=(
                f"id -u vmail >/dev/null 2>&1 || useradd --system --home-dir {VMAIL} "
                "--create-home --shell /usr/sbin/nologin vmail",
                # The mail store must belong to vmail even where the folder was there before
                # the user (useradd then leaves it to root and no mail can be delivered).
                f"install -d -o vmail -g vmail -m 0750 {VMAIL}",
                # Compiled here, where root may write the binaries LMTP (as vmail) only reads.
                f"install -d -m 0755 {SIEVE_DIR} && sievec {SIEVE_DIR}",
                systemd.reload("dovecot"),
            ),
        )
    ]


def users(ctx: RenderContext) -> list[str]:
    """passwd-file lines: ``user:password:uid:gid:gecos:home:shell:extra fields``; uid, gid and
    home come from the userdb's defaults."""
    entries = []
    for mailbox in ctx.directory.mailboxes:
        password = mailbox.password_hash or LOCKED
        if ":" in mailbox.address or ":" in password:
            raise RenderError(f"The mailbox {mailbox.address} cannot be written: ':' in a field.")
        quota = f"userdb_quota_rule=*:storage={mailbox.quota_mb}M" if mailbox.quota_mb else ""
        entries.append(f"{mailbox.address}:{password}::::::{quota}")
    return entries


def denied(ctx: RenderContext) -> dict[str, list[str]]:
    """For each service, the mailboxes that may not log in there (every file is written, an
    empty one too)."""
    return {
        service: [box.address for box in ctx.directory.mailboxes if not getattr(box, switch)]
        for service, switch in DENIED_SERVICES.items()
    }


def device_slots(ctx: RenderContext) -> dict[int, list[str]]:
    """passwd-file lines of the device passwords, the n-th of every mailbox in slot n; each
    names its row for the userdb (``DEVICE_FIELD``), so that a login with it is recorded."""
    slots: dict[int, list[str]] = {}
    for mailbox in ctx.directory.mailboxes:
        for slot, device in enumerate(mailbox.app_passwords, start=1):
            if ":" in device.password_hash:
                raise RenderError(f"A device password of {mailbox.address} has ':' in its hash.")
            field = f"userdb_{DEVICE_FIELD}={int(device.pk)}"
            slots.setdefault(slot, []).append(
                f"{mailbox.address}:{device.password_hash}::::::{field}"
            )
    return slots


def sieve_scripts(ctx: RenderContext) -> dict[str, bytes]:
    aliases: dict[str, list[str]] = {}
    for alias in ctx.directory.aliases:
        if alias.local_part:  # a catch-all's mail names no address of the mailbox
            for target in alias.destinations:
                aliases.setdefault(target, []).append(alias.address)
    scripts = {
        box.address: sieve.script(box, aliases=tuple(aliases.get(box.address, ())))
        for box in ctx.directory.mailboxes
    }
    return {address: script for address, script in scripts.items() if script is not None}


def _sieve_check() -> str:
    """Pigeonhole is there (LMTP loads it for every delivery: without it no mail is
    delivered), and each staged script compiles (``sievec`` to a scratch binary)."""
    staged = f'"$STAGE"{shell_quote(SIEVE_DIR)}'
    return (
        "command -v sievec >/dev/null || { echo 'Dovecot delivers through Pigeonhole (Sieve): "
        "install dovecot-sieve.' >&2; exit 1; }; "
        f'for script in {staged}/*.sieve; do [ -e "$script" ] || continue; '
        'sievec "$script" "$(mktemp)" || exit 1; done'
    )


def _passdbs(ctx: RenderContext) -> list[str]:
    blocks = [
        "# Refused per protocol before any password is checked.",
        "passdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {DENY_DIR}/%s",
        "  deny = yes",
        "}",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=BLF-CRYPT username_format=%u {USERS}",
        "}",
    ]
    for slot in device_slots(ctx):
        blocks += [
            f"# Device passwords, slot {slot}.",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=SHA256-CRYPT username_format=%u {DEVICES_DIR}/{slot}",
            "}",
        ]
    return blocks


def dovecot_conf(ctx: RenderContext) -> list[str]:
    trusted = ctx.hub_tunnel_address
    postmaster = f"postmaster@{ctx.directory.domains[0].name}" if ctx.directory.domains else ""
    return [
        "protocols = imap lmtp",
        "# Only where the gateway's connections arrive: the tunnel address.",
        f"listen = {one_line(ctx.host.tunnel_address)}",
        f"mail_home = {VMAIL}/%d/%n",
        "mail_location = maildir:~/Maildir",
        "mail_uid = vmail",
        "mail_gid = vmail",
        "first_valid_uid = 100",
        "mail_plugins = $mail_plugins quota",
        "",
        "ssl = required",
        f"ssl_cert = <{one_line(ctx.certificate)}",
        f"ssl_key = <{one_line(ctx.certificate_key)}",
        "# Mozilla's intermediate profile (hosts/render/tls.py).",
        f"ssl_min_protocol = {tls.MIN_PROTOCOL}",
        f"ssl_cipher_list = {tls.INTERMEDIATE_CIPHERS}",
        "ssl_prefer_server_ciphers = no",
        *_local_names(ctx),
        "auth_mechanisms = plain login",
        # Dovecot's default leaves out "+", which a mailbox's local part may hold.
        f"auth_username_chars = {USERNAME_CHARS}",
        "auth_username_format = %Lu",  # addresses are stored in lowercase
        "disable_plaintext_auth = yes",
        "",
        "# The gateway passes connections on with a PROXY v2 header carrying the client's address.",
        f"haproxy_trusted_networks = {trusted}",
        "",
        *_passdbs(ctx),
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {USERS}",
        f"  default_fields = uid=vmail gid=vmail home={VMAIL}/%d/%n",
        "}",
        "",
        "service imap-login {",
        "  inet_listener imap {",
        "    port = 0",
        "  }",
        "  inet_listener imaps {",
        f"    port = {IMAPS_PORT}",
        "    ssl = yes",
        "    haproxy = yes",
        "  }",
        "}",
        "service lmtp {",
        "  unix_listener /var/spool/postfix/private/dovecot-lmtp {",
        "    mode = 0600",
        "    user = postfix",
        "    group = postfix",
        "  }",
        "}",
        "service auth {",
        "  unix_listener /var/spool/postfix/private/auth {",
        "    mode = 0660",
        "    user = postfix",
        "    group = postfix",
        "  }",
        "}",
        "",
        "# The time of each IMAP login with a device password (the main password's: none).",
        "protocol imap {",
        "  mail_plugins = $mail_plugins last_login",
        "}",
        "protocol lmtp {",
        f"  postmaster_address = {one_line(postmaster)}",
        "  mail_plugins = $mail_plugins sieve",
        "}",
        "plugin {",
        "  quota = maildir:User quota",
        "  sieve = file:~/sieve;active=~/.dovecot.sieve",
        # A mailbox without forwarding or auto-reply has no script here; Pigeonhole skips it.
        f"  sieve_before = {SIEVE_DIR}/%u.sieve",
        f"  last_login_dict = file:{LAST_LOGIN}",
        f"  last_login_key = {LAST_LOGIN_KEY}%{{userdb:{DEVICE_FIELD}:none}}",
        "}",
        "",
        "namespace inbox {",
        "  inbox = yes",
        *_special_mailboxes(),
        "}",
    ]


def _local_names(ctx: RenderContext) -> list[str]:
    """Each other mail host name presents its own certificate (the TLS server name chooses)."""
    blocks = []
    for name, (chain, key) in ctx.other_certificates.items():
        blocks += [
            f"local_name {one_line(name)} {{",
            f"  ssl_cert = <{one_line(chain)}",
            f"  ssl_key = <{one_line(key)}",
            "}",
        ]
    return blocks


def _special_mailboxes() -> list[str]:
    folders = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Junk": "\\Junk", "Trash": "\\Trash"}
    return [
        line
        for name, use in folders.items()
        for line in (
            f"  mailbox {name} {{",
            "    auto = subscribe",
            f"    special_use = {use}",
            "  }",
        )
    ]
