"""Mailu 2024.06 on the home mail server: ``mailu.env``, the setup utility's Compose stack, and
the mail directory in the shape of Mailu's ``flask mailu config-import``.

Follows the Mailu-behind-Traefik guide (``docs/reference-setups.md``): Mailu listens on the
host's tunnel address, trusts the gateway's public and tunnel addresses (``REAL_IP_FROM``),
expects a PROXY v2 header on the ports the gateway forwards, and keeps its containers on
192.168.203.0/24, the subnet the gateway routes back through the tunnel for SMTP egress.
Settings as in docs/facts.md §3.

**The import replaces Mailu's whole configuration** (``config-import`` without ``-u``, run by
``scripts/mailu-import.py`` in Mailu's admin container). Mailgate is the single source of truth:
after each deployment Mailu holds exactly the enabled domains, mailboxes (with their password
hashes, quotas, names, forwarding, auto-reply, spam and IMAP/POP3 settings, and device passwords
as application tokens) and aliases that Mailgate shows, and a mailbox or alias deleted or
disabled in Mailgate stops receiving mail and logging in at once. A merge (``-u``) would keep
every account Mailgate no longer lists, still able to log in, which is the failure a demanding
user cannot accept; Mailgate renders a snapshot, not a history, so it cannot name the deletions
a merge would need. The import runs in one transaction: a file Mailu refuses changes nothing.
What it means, and why Mailu's admin UI is off (``ADMIN=false``):

- Domains, users and aliases created in Mailu itself (the reference's ``flask mailu admin``
  account included) are deleted at the next deployment.
- Every field Mailgate models is written for every user, so nothing Mailu holds is reset to a
  default behind Mailgate's back. What Mailgate does not model (a domain's limits and comment,
  a user's comment, spoofing right, admin flag, "mark spam as read", an alias's comment) is read
  from Mailu and kept by the import script (docs/mailbox-features.md).
- Application tokens are Mailgate's device passwords alone: the script deletes Mailu's tokens in
  the import's transaction (Mailu's import adds tokens and never removes one, so a revoked
  device password would log in on). Fetched accounts, manager rights and a domain's alternative
  names hang off in tables of their own and stay (tests/test_render_mailu_oracle.py).
- DKIM keys are not in the import: Mailgate generates them and writes each domain's signing key
  to ``/mailu/dkim`` with rspamd's signing override (``zones.rspamd``, a bundle contributor).

Mailu lets an alias's destinations send as the alias whatever Mailgate's "allowed as sender"
says: its sender check returns every alias destination, and no setting narrows it.
"""

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path

from gateway.bundle import File, RenderError, Unit
from gateway.selectors import AliasEntry, DomainEntry, MailboxEntry, MailDirectory
from gateway.writers import (
    Text,
    json_yaml_document,
    lines,
    one_line,
    shell_quote,
    yaml_document,
)
from hosts.choices import MailBackend, TlsLevel
from hosts.models import MAILU_CERTS, MAILU_STORAGE, Relay, mailu_certificate_problem
from hosts.render import jsonschemas
from hosts.render.context import PROXY_PROTOCOL_PORTS, RenderContext

VERSION = "2024.06"
MAILU_DIR = "/opt/mailu"
ENV_PATH = f"{MAILU_DIR}/mailu.env"
COMPOSE_PATH = f"{MAILU_DIR}/docker-compose.yml"
IMPORT_PATH = f"{MAILU_DIR}/mailgate/config-import.yaml"
IMPORT_SCRIPT = f"{MAILU_DIR}/mailgate/import.py"  # scripts/mailu-import.py, run in admin
NO_START, NO_END = "1900-01-01", "2999-12-31"  # Mailu's "always" for an auto-reply's days
DEVICE_COMMENT = "Mailgate device password"
STORAGE = MAILU_STORAGE  # written into the volumes
DKIM_DIR = f"{STORAGE}/dkim"  # Mailu's DKIM keys, <domain>.<selector>.key
DKIM_MOUNT = "/dkim"  # where the admin and antispam containers see DKIM_DIR
RSPAMD_OVERRIDES = f"{STORAGE}/overrides/rspamd"
# The front's certificate (TLS_FLAVOR=cert): the full chain and its key in the certs volume,
# which the front sees as /certs (core/nginx/config.py). Mailgate issues them (certs.deploy).
CERTS = MAILU_CERTS
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"  # Mailu's defaults of TLS_(CERT|KEYPAIR)_FILENAME
DEFAULT_SUBNET = "192.168.203.0/24"
POSTMASTER = "postmaster"
WEBMAIL = "snappymail"
# Mailu's default PORTS (25,80,443,465,993,995,4190) plus 587, which stays closed unless listed.
PORTS = (25, 80, 443, 465, 587, 993, 995, 4190)
MIB = 1024 * 1024  # Mailgate's quota "MB" is Dovecot's "M" (the Postfix+Dovecot renderer's too)
# Mailu's column sizes (core/admin/mailu/models.py): its import refuses a longer value, and with
# it the whole document (docs/facts.md §3). Mailgate itself allows 253 and 200.
MAX_DOMAIN_LENGTH = 80
MAX_DISPLAY_NAME_LENGTH = 160

# Mailu documents only these two; with a password every Mailgate level maps to the nearest one
# that is no weaker: "may" would send the relay password in clear to a relay without STARTTLS
# (Mailu refuses plaintext SASL then anyway), so it becomes "encrypt"; "verify" checks the
# certificate's chain and name, as Mailu's "secure" does. See ``outbound_tls_level``.
OUTBOUND_TLS = {
    TlsLevel.MAY: "encrypt",
    TlsLevel.ENCRYPT: "encrypt",
    TlsLevel.VERIFY: "secure",
    TlsLevel.SECURE: "secure",
}

# docker compose's env-file parser treats these specially in an unquoted value (quotes, variable
# interpolation, inline comments, escapes, word ends), so a value holding one is refused.
_ENV_UNSAFE = re.compile(r"[\s'\"`$#\\]")
_ENV_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SCHEME_PREFIX = re.compile(r"^\{[A-Za-z0-9._-]+\}")
SCRIPTS = Path(__file__).parent / "scripts"

INSTRUCTIONS = """\
DKIM: generate each domain's key in Mailgate (DNS page) and publish its record; Mailgate writes
the signing key and rspamd's signing configuration here. Keys made in Mailu are not used.
Mailu's admin UI is off: manage domains, mailboxes and aliases in Mailgate."""


def units(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if not (host.is_mailserver and host.mail_backend == MailBackend.MAILU):
        return []
    subnet = mailu_subnet(ctx)
    files = (
        File(ENV_PATH, env_file(ctx, subnet), mode=0o600, secret=True),
        File(COMPOSE_PATH, yaml_document(validated(compose(ctx, subnet)))),
        File(IMPORT_PATH, json_yaml_document(mail_config(ctx.directory)), mode=0o600, secret=True),
        File(IMPORT_SCRIPT, lines([]) + (SCRIPTS / "mailu-import.py").read_bytes()),
    )
    return [
        Unit(
            name="mailu",
            files=files,
            checks=(_compose_check(), _import_dry_run()),
            activate=(f"cd {MAILU_DIR} && docker compose up -d", _import()),
            instructions=INSTRUCTIONS,
        )
    ]


def mailu_subnet(ctx: RenderContext) -> ipaddress.IPv4Network:
    """Mailu's Docker network: the subnet the gateway routes back to this spoke."""
    value = (ctx.spoke_of.routed_subnet if ctx.spoke_of else "") or DEFAULT_SUBNET
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        raise RenderError(f"Mailu's subnet {value!r} is not a network.") from None
    if network.version != 4 or network.num_addresses < 8:
        raise RenderError(
            f"Mailu needs an IPv4 subnet of at least /29 for its containers, not {value}: set "
            "the tunnel peer's routed subnet (e.g. 192.168.203.0/24)."
        )
    return network


# --- mailu.env ------------------------------------------------------------------------------

COMMENTS = {
    "SUBNET": "The gateway routes this subnet back through the tunnel (SMTP egress).",
    "TLS_FLAVOR": "The front presents the certificate in its certs volume: the one Mailgate "
    "gets for every name of HOSTNAMES, unless the host names its own files.",
    "PORTS": "587 is closed unless listed.",
    "ADMIN": "Off: Mailgate manages domains, mailboxes and aliases, and each deployment "
    "replaces Mailu's copy, so changes made in Mailu's admin UI would not last.",
    "DISABLE_STATISTICS": "Do not report this installation to Mailu's statistics server.",
    "REAL_IP_FROM": "The gateway's public and tunnel addresses: the proxies Mailu trusts.",
    "PROXY_PROTOCOL": "Every port the gateway forwards with a PROXY v2 header, 443 too: the "
    "gateway's Traefik sends the header to 443 as well. "
    "REAL_IP_HEADER stays unset, as Mailu requires with PROXY_PROTOCOL.",
    "OUTBOUND_TLS_LEVEL": "Postfix's smtp_tls_security_level toward the relay: may for a relay "
    "without a password (a relay host on the LAN), else at least encrypt.",
}


def env_file(ctx: RenderContext, subnet: ipaddress.IPv4Network) -> bytes:
    body = []
    for key, value in settings(ctx, subnet):
        if key in COMMENTS:
            body.append(f"# {COMMENTS[key]}")
        body.append(f"{key}={_env_value(key, value)}")
    return lines(body)


def settings(ctx: RenderContext, subnet: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    host = ctx.host
    if not host.mailu_secret_key:
        raise RenderError(f"{host} has no Mailu secret key: save the host again to create one.")
    certificate, key = certificate_files(host)
    return [
        ("SECRET_KEY", host.mailu_secret_key),
        ("SUBNET", str(subnet)),
        ("DOMAIN", _main_domain(ctx.directory)),
        ("HOSTNAMES", ",".join(mail_hostnames(ctx))),
        ("POSTMASTER", POSTMASTER),
        ("TLS_FLAVOR", "cert"),
        ("TLS_CERT_FILENAME", certificate),
        ("TLS_KEYPAIR_FILENAME", key),
        ("PORTS", ",".join(str(port) for port in PORTS)),
        ("ADMIN", "false"),
        ("API", "false"),
        ("WEBMAIL", WEBMAIL),
        ("WEBDAV", "none"),
        ("ANTIVIRUS", "none"),
        ("WEB_ADMIN", "/admin"),
        ("WEB_WEBMAIL", "/webmail"),
        ("WEBROOT_REDIRECT", "/webmail"),
        ("WEBSITE", f"https://{ctx.hostname}"),
        ("DISABLE_STATISTICS", "True"),
        ("MESSAGE_SIZE_LIMIT", "50000000"),
        ("RECIPIENT_DELIMITER", "+"),
        ("DMARC_RUA", POSTMASTER),
        ("DMARC_RUF", POSTMASTER),
        ("CREDENTIAL_ROUNDS", "12"),
        ("LOG_LEVEL", "WARNING"),
        ("TZ", "Etc/UTC"),
        *_proxy_settings(ctx),
        *_relay_settings(host.relay, subnet),
    ]


def mail_hostnames(ctx: RenderContext) -> list[str]:
    return hostnames(ctx.hostname, (domain.mail_hostname for domain in ctx.directory.domains))


def hostnames(own: str, mail_hostnames: Iterable[str]) -> list[str]:
    """HOSTNAMES: the server's own name first (SMTP banner, MX target), then every domain's
    mail host; also the names of the front's one certificate (``certs.names``).

    Unlike the guide, no autoconfig./autodiscover. names: the certificate names all of them, so
    one name that DNS-01 cannot prove would leave Mailu without any."""
    return list(dict.fromkeys(name.lower() for name in (own, *mail_hostnames)))


def certificate_files(host) -> tuple[str, str]:
    """TLS_CERT_FILENAME and TLS_KEYPAIR_FILENAME, relative to the certs volume: Mailgate's
    certificate, or the files the host names itself, which must lie in that volume (the front
    sees nothing else of the host)."""
    if not host.tls_certificate_path:
        return CERT_FILE, KEY_FILE
    # Host.clean refuses such files; a row saved before that rule still fails here.
    if problem := mailu_certificate_problem(host.tls_certificate_path, host.tls_key_path):
        raise RenderError(f"{host}: {problem}")
    return tuple(
        path.removeprefix(f"{CERTS}/") for path in (host.tls_certificate_path, host.tls_key_path)
    )


def _main_domain(directory: MailDirectory) -> str:
    if not directory.domains:
        raise RenderError("Mailu needs a main mail domain: add and enable a domain first.")
    return directory.domains[0].name


def _proxy_settings(ctx: RenderContext) -> list[tuple[str, str]]:
    """Trust the gateway's PROXY v2 headers; a mail server reached directly gets none."""
    gateway = ctx.gateway
    if gateway is None:
        return []
    addresses = [gateway.public_ipv4, gateway.public_ipv6, gateway.tunnel_address]
    trusted = list(dict.fromkeys(str(address) for address in addresses if address))
    return [
        ("REAL_IP_FROM", ",".join(trusted)),
        ("PROXY_PROTOCOL", ",".join(str(port) for port in PROXY_PROTOCOL_PORTS)),
    ]


def _relay_settings(relay: Relay | None, subnet: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    if relay is None:
        return []
    if _is_loopback(relay.host):
        raise RenderError(
            f"The relay {relay.name} is at {relay.host}, but Mailu's Postfix runs in a "
            f"container, where {relay.host} is that container's own loopback, not this host's: "
            "mail would never reach the relay. Point the relay at an address the container "
            "can reach, e.g. the LAN address of a Mailgate relay host whose Postfix relays "
            f"through the Bridge, or this host's address on Mailu's network ({subnet[1]}) "
            "with the smarthost listening there."
        )
    pairs = [("RELAYHOST", relay.next_hop)]
    if relay.username:
        pairs += [("RELAYUSER", relay.username), ("RELAYPASSWORD", relay.password)]
    return [*pairs, ("OUTBOUND_TLS_LEVEL", outbound_tls_level(relay))]


def outbound_tls_level(relay: Relay) -> str:
    """Mailu writes OUTBOUND_TLS_LEVEL into Postfix's smtp_tls_security_level as it is. A relay
    that takes no password (a Mailgate relay host on the LAN, whose Postfix offers no STARTTLS)
    keeps "may": "encrypt" would defer every message. With a password, "may" becomes "encrypt"
    so that the password never crosses in clear."""
    level = TlsLevel(relay.tls_level)
    if level == TlsLevel.MAY and not relay.username:
        return "may"
    return OUTBOUND_TLS[level]


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _env_value(key: str, value) -> str:
    text = one_line(value)
    if not _ENV_KEY.match(key):
        raise RenderError(f"{key!r} is not an environment variable name.")
    if match := _ENV_UNSAFE.search(text):
        raise RenderError(
            f"Refusing to write {key} to mailu.env: its value contains {match.group()!r}, which "
            "docker compose's env-file parser would read as a quote, variable, comment or word "
            "end. Use a value without spaces, quotes, $, #, ` or backslashes."
        )
    return text


# --- docker-compose.yml ---------------------------------------------------------------------


def compose(ctx: RenderContext, subnet: ipaddress.IPv4Network) -> dict:
    """The setup utility's stack for this host, built as data."""
    resolver = str(subnet[-2])  # the setup utility gives unbound the last usable address
    bind = _listen_address(ctx)
    services = {
        "redis": {
            "image": "redis:alpine",
            "restart": "always",
            "volumes": [f"{STORAGE}/redis:/data"],
            "depends_on": ["resolver"],
            "dns": [resolver],
        },
        "front": {
            **_mailu_service("front", "nginx"),
            "ports": [f"{bind}:{port}:{port}" for port in PORTS],
            "networks": ["default", "webmail"],
            "volumes": [f"{CERTS}:/certs", f"{STORAGE}/overrides/nginx:/overrides:ro"],
            "depends_on": ["resolver"],
            "dns": [resolver],
        },
        "resolver": {
            "image": _image("unbound"),
            "env_file": "mailu.env",
            "restart": "always",
            "networks": {"default": {"ipv4_address": resolver}},
        },
        "admin": {
            **_mailu_service("admin", "admin"),
            # Not in the setup utility's file: the admin logs each login it allows at INFO,
            # which is how Mailgate learns a device password's last use (hosts/usage.py); the
            # other containers keep mailu.env's WARNING.
            "environment": {"LOG_LEVEL": "INFO"},
            "volumes": [f"{STORAGE}/data:/data", f"{DKIM_DIR}:{DKIM_MOUNT}"],
            "depends_on": ["redis", "resolver"],
            "dns": [resolver],
        },
        "imap": {
            **_mailu_service("imap", "dovecot"),
            "volumes": [f"{STORAGE}/mail:/mail", f"{STORAGE}/overrides/dovecot:/overrides:ro"],
            "depends_on": ["front", "resolver"],
            "dns": [resolver],
        },
        "smtp": {
            **_mailu_service("smtp", "postfix"),
            "volumes": [
                f"{STORAGE}/mailqueue:/queue",
                f"{STORAGE}/overrides/postfix:/overrides:ro",
            ],
            "depends_on": ["front", "resolver"],
            "dns": [resolver],
        },
        "antispam": {
            **_mailu_service("antispam", "rspamd"),
            "hostname": "antispam",
            "volumes": [
                f"{STORAGE}/filter:/var/lib/rspamd",
                f"{RSPAMD_OVERRIDES}:/overrides:ro",
                # The keys Mailgate's signing override names (zones.rspamd): Mailu's own
                # antispam reads keys from the admin container instead, one selector for all.
                f"{DKIM_DIR}:{DKIM_MOUNT}:ro",
            ],
            "depends_on": ["front", "redis", "resolver"],
            "dns": [resolver],
        },
        "webmail": {
            "image": _image("webmail"),
            "restart": "always",
            "env_file": "mailu.env",
            "volumes": [
                f"{STORAGE}/webmail:/data",
                f"{STORAGE}/overrides/{WEBMAIL}:/overrides:ro",
            ],
            "networks": ["webmail"],
            "depends_on": ["front"],
        },
    }
    networks = {
        "default": {
            "driver": "bridge",
            "ipam": {"driver": "default", "config": [{"subnet": str(subnet)}]},
        },
        "webmail": {"driver": "bridge"},
    }
    return {"services": services, "networks": networks}


def _image(name: str) -> str:
    return f"ghcr.io/mailu/{name}:{VERSION}"


def _mailu_service(service: str, image: str) -> dict:
    return {
        "image": _image(image),
        "restart": "always",
        "env_file": "mailu.env",
        "logging": {"driver": "journald", "options": {"tag": f"mailu-{service}"}},
    }


def _listen_address(ctx: RenderContext) -> str:
    """The tunnel address, where the gateway forwards mail (as in the guide's setup choices)."""
    address = ctx.host.tunnel_address
    if not address:
        raise RenderError(
            f"Mailu publishes its ports on {ctx.host}'s tunnel address, where the gateway "
            "forwards mail: give the host a tunnel address (e.g. 10.0.1.2) and add it to the "
            "gateway's tunnel."
        )
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else str(address)


def validated(data: dict) -> dict:
    """``data`` if it satisfies the Compose specification, else a RenderError naming the fault."""
    found = jsonschemas.problems("compose-spec", data, "docker-compose.yml")
    if found:
        raise RenderError("docker-compose.yml breaks the Compose schema:\n- " + "\n- ".join(found))
    return data


# --- config-import.yaml ---------------------------------------------------------------------


def mail_config(directory: MailDirectory) -> dict:
    """Mailu's ``config-import`` document: singular section names, as ``schemas.py`` has them."""
    return {
        "domain": [_domain(domain) for domain in directory.domains],
        "user": [_user(mailbox) for mailbox in directory.mailboxes],
        "alias": [_alias(alias) for alias in directory.aliases],
    }


def _domain(domain: DomainEntry) -> dict:
    if len(domain.name) > MAX_DOMAIN_LENGTH:
        raise RenderError(
            f"Mailu keeps domain names of at most {MAX_DOMAIN_LENGTH} characters and would "
            f"refuse the whole directory for {domain.name} ({len(domain.name)} characters): "
            "disable that domain, or serve it with Postfix + Dovecot."
        )
    return {"name": domain.name}


def _user(mailbox: MailboxEntry) -> dict:
    if not mailbox.password_hash:
        raise RenderError(
            f"{mailbox.address} has no password yet, and Mailu refuses a user without one: "
            "set its password in Mailgate, or disable the mailbox."
        )
    if len(mailbox.display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise RenderError(
            f"Mailu keeps display names of at most {MAX_DISPLAY_NAME_LENGTH} characters and "
            f"would refuse the whole directory for the one of {mailbox.address} "
            f"({len(mailbox.display_name)} characters): shorten it."
        )
    return {
        "email": mailbox.address,
        # Mailu stores the bare passlib hash; it identifies bcrypt by its $2b$ itself.
        "password": _bare(mailbox.password_hash),
        "displayed_name": mailbox.display_name,
        # Always written: an absent quota means Mailu's default of 1 GB; 0 means unlimited.
        "quota_bytes": mailbox.quota_mb * MIB,
        **_settings(mailbox),
    }


def _settings(mailbox: MailboxEntry) -> dict:
    """Every per-user setting Mailgate models, always written (a full import would otherwise
    reset it to Mailu's default). Mailu has no switch for SMTP submission: smtp_enabled is not
    rendered (docs/mailbox-features.md)."""
    start, end = mailbox.autoreply_start, mailbox.autoreply_end
    return {
        "enable_imap": mailbox.imap_enabled,
        "enable_pop": mailbox.pop3_enabled,
        "forward_enabled": bool(mailbox.forward_to),
        # Sorted, as Mailu keeps the list (a set), so its export says what was rendered.
        "forward_destination": sorted(mailbox.forward_to),
        "forward_keep": mailbox.forward_keep_copy,
        "reply_enabled": mailbox.autoreply_enabled,
        "reply_subject": mailbox.autoreply_subject,
        "reply_body": Text(mailbox.autoreply_body),
        "reply_startdate": start.isoformat() if start else NO_START,
        "reply_enddate": end.isoformat() if end else NO_END,
        "spam_enabled": mailbox.spam_enabled,
        "spam_threshold": mailbox.spam_threshold,
        # Mailu's application tokens; it verifies a $5$ (SHA256-CRYPT) hash and rehashes it,
        # and a pbkdf2_sha256 one (a token made in Mailu, adopted). The comment is the name.
        "tokens": [
            {"password": _bare(device.password_hash), "comment": device.name or DEVICE_COMMENT}
            for device in mailbox.app_passwords
        ],
    }


def _bare(digest: str) -> str:
    return _SCHEME_PREFIX.sub("", digest, count=1)


def _alias(alias: AliasEntry) -> dict:
    if alias.local_part:
        return {"email": alias.address, "destination": list(alias.destinations)}
    # Mailu's catch-all: a wildcard alias whose local part is the SQL LIKE pattern "%".
    return {
        "email": f"%@{alias.domain}",
        "destination": list(alias.destinations),
        "wildcard": True,
    }


# --- checks and activation ------------------------------------------------------------------


def _compose_check() -> str:
    staged = f'"$STAGE"{shell_quote(MAILU_DIR)}'
    return (
        "if command -v docker >/dev/null 2>&1; then "
        "if docker compose version >/dev/null 2>&1; then "
        f"docker compose --project-directory {staged} -f {staged}/docker-compose.yml config -q; "
        "else echo 'docker is installed without its compose plugin (docker compose), which "
        "Mailu needs: install it, e.g. docker-compose-plugin.' >&2; false; fi; fi"
    )


def _import_dry_run() -> str:
    """Ask the running Mailu to validate the new directory without saving (field lengths,
    duplicate names; not password hashes, which Mailu 2024.06 takes unread: docs/facts.md §3);
    a refusal fails the deployment with Mailu's own message. Skipped while Mailu's admin is not
    running (no stack yet: ``docker compose ps`` fails on the missing file)."""
    live = shell_quote(COMPOSE_PATH)
    script = f'"$STAGE"{shell_quote(IMPORT_SCRIPT)}'
    return (
        "if command -v docker >/dev/null 2>&1 && "
        f"docker compose -f {live} ps --status running --services 2>/dev/null | grep -qx admin; "
        f'then docker compose -f {live} exec -T admin python3 -c "$(cat {script})" -n '
        f'< "$STAGE"{shell_quote(IMPORT_PATH)}; fi'
    )


def export_command() -> str:
    """What Mailu holds now, as ``config-export --full --secrets`` prints it; fails while
    Mailu's admin is not running (no stack yet)."""
    live = shell_quote(COMPOSE_PATH)
    return (
        f"test -f {live} && docker compose -f {live} exec -T admin "
        "flask mailu config-export --full --secrets"
    )


def front_restart() -> str:
    """Restart the front if it runs, so that it presents the certificate now in its certs
    volume. Its config.py looks for the files only when it runs (at the container's start, or
    from certwatcher.py), and without them it renders nginx and its Dovecot proxy without TLS:
    a reload would keep a front that started before the certificate existed without TLS. Every
    file is in place before any activation step runs, so on a first deployment ``up -d`` (this
    unit's activation, which runs before the certificates') already started it with the files,
    and the restart changes nothing; with no stack running, there is nothing to restart."""
    live = shell_quote(COMPOSE_PATH)
    return (
        f"if docker compose -f {live} ps --status running --services 2>/dev/null | grep -qx "
        f"front; then docker compose -f {live} restart front; fi"
    )


# The admin image's own HEALTHCHECK (core/admin/Dockerfile): gunicorn answers /ping only once
# start.py has run ``flask db upgrade``. Asking the database instead (config-export) while the
# upgrade runs races it on SQLite: the upgrade failed with "database is locked" in the lab.
ADMIN_READY = "curl -m3 -skfLo /dev/null http://localhost:8080/ping"


def _import() -> str:
    """Wait (at most five minutes) until the admin container is healthy, then replace the
    config through Mailgate's import script (tokens replaced, unmodeled fields kept)."""
    return (
        f"cd {MAILU_DIR} && for _ in $(seq 300); do "
        f"docker compose exec -T admin {ADMIN_READY} >/dev/null 2>&1 && break; sleep 1; done; "
        f'docker compose exec -T admin python3 -c "$(cat {shell_quote(IMPORT_SCRIPT)})" '
        f"< {shell_quote(IMPORT_PATH)}"
    )
