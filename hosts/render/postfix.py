"""Postfix: the mail server of a Postfix + Dovecot home server, and the relay host that hands
outgoing mail to a smarthost such as the Proton Mail Bridge.

Follows the ISPmail guide (``docs/reference-setups.md``: submission on 587 with STARTTLS enforced,
submissions on 465 in wrapper mode, Dovecot SASL, ``reject_sender_login_mismatch`` with aliases
allowed as senders) and the Proton Bridge relay guide (relayhost, SASL password map keyed
as Postfix looks it up, canonical sender rewriting, mynetworks for LAN clients).

On the mail server, mail arrives from the gateway with a PROXY v2 header, and Postfix believes
whatever address such a header names: it has no list of trusted proxies. So the services that
read one listen only on the tunnel address, ``mailgate-mail-guard`` (``guard.py``) lets only the
hub's tunnel address reach them, and they trust no network (``mynetworks`` is empty there): an
address a header claims never lets mail relay, and inbound mail on port 25 never reaches the
signing milter. Programs on the host itself send through a plain listener on loopback.
"""

import ipaddress
from collections.abc import Iterable
from pathlib import PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.bundle import File, RenderError, Unit, contributed_settings
from gateway.selectors import MailDirectory
from gateway.writers import key_values, lines, one_line, shell_quote, table
from hosts.choices import MailBackend, TlsLevel
from hosts.models import Relay
from hosts.render import postsrsd, systemd, tls
from hosts.render.context import RenderContext

CONFIG_DIR = "/etc/postfix"
# Also the name other apps contribute main.cf settings under (``gateway.bundle``).
MAIN_CF = f"{CONFIG_DIR}/main.cf"
MAPS_DIR = "/etc/postfix/mailgate"
SNI_MAP = f"{MAPS_DIR}/tls_server_sni"
LOOPBACK = ("127.0.0.0/8", "[::1]/128")
# The services that read the gateway's PROXY v2 header, by port (master.cf service names).
PROXIED_SERVICES = {25: "smtp", 587: "submission", 465: "submissions"}


def units(ctx: RenderContext) -> list[Unit]:
    host = ctx.host
    if host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT:
        return [*postsrsd.units(ctx), _unit(ctx, mailserver=True)]
    if host.is_relay:
        if host.relay is None:
            raise RenderError(f"The relay host {host} has no smarthost: choose one under Relay.")
        return [_unit(ctx, mailserver=False)]
    return []


def _unit(ctx: RenderContext, *, mailserver: bool) -> Unit:
    relay = ctx.host.relay
    files = [
        File(MAIN_CF, key_values(main_cf(ctx, mailserver=mailserver))),
        File(f"{CONFIG_DIR}/master.cf", lines(master_cf(ctx, mailserver=mailserver))),
    ]
    if mailserver:
        files += [File(f"{MAPS_DIR}/{name}", table(rows)) for name, rows in maps(ctx).items()]
        if ctx.other_certificates:
            files.append(File(SNI_MAP, table(_sni_rows(ctx))))
    if relay:
        files += _relay_files(relay)
    postmapped = [file.path for file in files if _is_hash_map(file.path)]
    return Unit(
        name="postfix",
        files=tuple(files),
        checks=(
            _check_script(
                postmapped,
                _certificate_check(ctx) if mailserver else [],
                _certificate_paths(ctx) if mailserver else [],
            ),
        ),
        activate=(*(_postmap(path) for path in postmapped), _reload()),
    )


def _sni_rows(ctx: RenderContext) -> list[tuple[str, str]]:
    """tls_server_sni_maps: each other mail host name, its key, then its chain, as files
    ``postmap -F`` reads into the map."""
    return [
        (name, f"{one_line(key)} {one_line(chain)}")
        for name, (chain, key) in ctx.other_certificates.items()
    ]


def _postmap(path: str) -> str:
    return f"postmap {_postmap_flags(path)}hash:{shell_quote(path)}"


def _postmap_flags(path: str) -> str:
    """The SNI map holds the certificate files' contents, which ``postmap -F`` reads in."""
    return "-F " if path == SNI_MAP else ""


def main_cf(ctx: RenderContext, *, mailserver: bool) -> list[tuple[str, str]]:
    host = ctx.host
    settings = [
        ("compatibility_level", "3.6"),
        ("myhostname", ctx.hostname),
        ("myorigin", "$myhostname"),
        ("mydestination", "localhost"),
        # The mail server's services name their addresses in master.cf; the relay host's
        # smtpd serves its LAN on every interface.
        ("inet_interfaces", "loopback-only" if mailserver else "all"),
        # SMTP egress through the gateway is IPv4 (its SNAT, its SPF record, its PTR): mail
        # to an IPv6 MX would leave from the home line instead.
        ("inet_protocols", "ipv4" if _egress_via_hub(ctx) else "all"),
        ("mynetworks", " ".join([*LOOPBACK, *_lan_networks(host, mailserver=mailserver)])),
        ("smtpd_banner", "$myhostname ESMTP"),
        ("biff", "no"),
        ("append_dot_mydomain", "no"),
        ("alias_maps", "hash:/etc/aliases"),
        ("alias_database", "hash:/etc/aliases"),
        ("disable_vrfy_command", "yes"),
        ("smtpd_helo_required", "yes"),
        # Only mynetworks and logged-in users may relay: never an open relay.
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        ),
        ("smtp_tls_security_level", "may"),
        ("smtp_tls_CApath", "/etc/ssl/certs"),
    ]
    if mailserver:
        settings += _mailserver_settings(ctx)
    if host.relay:
        settings += _relay_settings(host.relay)
    own = _override(settings)
    # Other apps' additions (zones: the DKIM signing milter) come last and may not replace any.
    return [*own, *contributed_settings(MAIN_CF, ctx, taken=dict(own))]


def _mailserver_settings(ctx: RenderContext) -> list[tuple[str, str]]:
    def hashed(name: str) -> str:
        return f"hash:{MAPS_DIR}/{name}"

    return [
        ("smtpd_tls_cert_file", ctx.certificate),
        ("smtpd_tls_key_file", ctx.certificate_key),
        ("smtpd_tls_security_level", "may"),
        ("smtpd_tls_auth_only", "yes"),
        # Submission (587, 465) requires TLS and so gets the "mandatory" settings: Mozilla's
        # intermediate profile. Port 25 stays opportunistic (RFC 7435), without anonymous suites.
        ("smtpd_tls_mandatory_protocols", f">={tls.MIN_PROTOCOL}"),
        ("smtpd_tls_mandatory_ciphers", "high"),
        ("tls_high_cipherlist", tls.INTERMEDIATE_CIPHERS),
        ("smtpd_tls_exclude_ciphers", "aNULL, eNULL"),
        ("tls_preempt_cipherlist", "no"),
        *([("tls_server_sni_maps", f"hash:{SNI_MAP}")] if ctx.other_certificates else []),
        ("smtpd_sasl_type", "dovecot"),
        ("smtpd_sasl_path", "private/auth"),
        # AUTH belongs to the submission ports; port 25 is for other mail servers.
        ("smtpd_sasl_auth_enable", "no"),
        ("virtual_mailbox_domains", hashed("virtual_domains")),
        ("virtual_mailbox_maps", hashed("virtual_mailboxes")),
        ("virtual_alias_maps", hashed("virtual_aliases")),
        ("virtual_transport", "lmtp:unix:private/dovecot-lmtp"),
        ("smtpd_sender_login_maps", hashed("sender_logins")),
        *postsrsd.main_cf(ctx),
    ]


def _relay_settings(relay: Relay) -> list[tuple[str, str]]:
    settings = [
        ("relayhost", relay.next_hop),
        ("smtp_sasl_auth_enable", "yes"),
        ("smtp_sasl_password_maps", f"hash:{MAPS_DIR}/sasl_passwd"),
        ("smtp_sasl_security_options", "noanonymous"),
        ("smtp_sasl_tls_security_options", "noanonymous"),
        ("smtp_tls_security_level", relay.tls_level),
    ]
    if relay.tls_certificate and relay.tls_level in (TlsLevel.VERIFY, TlsLevel.SECURE):
        # The Bridge's certificate is self-signed and names 127.0.0.1 at best: pinning its
        # fingerprint trusts exactly that certificate, with no CA and no name to match.
        settings += [
            ("smtp_tls_security_level", "fingerprint"),
            ("smtp_tls_fingerprint_digest", "sha256"),
            ("smtp_tls_fingerprint_cert_match", _fingerprint(relay.tls_certificate)),
        ]
    if relay.rewrite_sender_to:
        settings.append(("sender_canonical_maps", f"regexp:{MAPS_DIR}/sender_canonical"))
    return settings


def _relay_files(relay: Relay) -> list[File]:
    user, password = relay.username, relay.password
    if ":" in user:
        raise RenderError(f"The relay user name {user!r} contains ':', which SASL cannot carry.")
    files = [
        # Keyed exactly as the SMTP client looks the next hop up: "[host]:port".
        File(
            f"{MAPS_DIR}/sasl_passwd",
            table([(relay.next_hop, f"{user}:{password}")]),
            mode=0o600,
            secret=True,
        )
    ]
    if relay.rewrite_sender_to:
        files.append(
            File(
                f"{MAPS_DIR}/sender_canonical",
                lines([f"/.*/ {one_line(relay.rewrite_sender_to)}"]),
            )
        )
    return files


def maps(ctx: RenderContext) -> dict[str, list[tuple[str, str]]]:
    directory = ctx.directory
    return {
        "virtual_domains": [(domain.name, "OK") for domain in directory.domains],
        "virtual_mailboxes": [(mailbox.address, "OK") for mailbox in directory.mailboxes],
        "virtual_aliases": _virtual_aliases(ctx),
        "sender_logins": _sender_logins(directory),
    }


def _virtual_aliases(ctx: RenderContext) -> list[tuple[str, str]]:
    directory = ctx.directory
    rows = [(alias.address, ",".join(alias.destinations)) for alias in directory.aliases]
    # A catch-all (@domain) would also swallow the domain's mailboxes, because
    # virtual_alias_maps is consulted before delivery: map each mailbox to itself first.
    catch_all = {alias.domain for alias in directory.aliases if not alias.local_part}
    rows += [(box.address, box.address) for box in directory.mailboxes if box.domain in catch_all]
    return sorted([*rows, *_postmasters(ctx, taken={key for key, _ in rows})])


LOCAL_RECIPIENTS = ("postmaster", "root")  # bounces (RFC 5321 4.5.1), cron


def _postmasters(ctx: RenderContext, *, taken: set[str]) -> list[tuple[str, str]]:
    """A person behind every postmaster address (RFC 5321 4.5.1 requires one per domain):
    a domain without its own postmaster@ mailbox or alias gets its first mailbox; mail for
    the host itself (cron's root, bounces' postmaster, Postfix appends the host name to a
    bare name) goes to the postmaster of the host's own domain. Virtual aliases apply to every
    recipient, local ones too, so nothing is left to the host's /etc/aliases or a mailbox
    nobody reads."""
    directory = ctx.directory
    taken = taken | {box.address for box in directory.mailboxes}
    first: dict[str, str] = {}
    for box in directory.mailboxes:
        first.setdefault(box.domain, box.address)
    if not first:
        return []
    fallback = next(iter(first.values()))
    rows = [
        (f"postmaster@{domain.name}", first.get(domain.name, fallback))
        for domain in directory.domains
        if f"postmaster@{domain.name}" not in taken
    ]
    own = next((d.name for d in directory.domains if d.mail_hostname == ctx.hostname), None)
    person = f"postmaster@{own}" if own else fallback
    rows += [
        (f"{local}@{host}", person)
        for host in (ctx.hostname, "localhost")
        for local in LOCAL_RECIPIENTS
        if f"{local}@{host}" not in taken
    ]
    return rows


def _sender_logins(directory: MailDirectory) -> list[tuple[str, str]]:
    """Who may send as which address: every mailbox as itself, and the mailboxes behind an
    alias marked as a sender as that alias (the login is the mailbox address)."""
    mailboxes = {box.address for box in directory.mailboxes}
    rows = [(address, address) for address in mailboxes]
    for alias in directory.aliases:
        owners = [target for target in alias.destinations if target in mailboxes]
        if alias.allowed_as_sender and owners:
            rows.append((alias.address, ",".join(owners)))
    return sorted(rows)


# master.cf: Debian's services, then the public listeners. Columns: service, type, private,
# unpriv, chroot, wakeup, maxproc, command.
_INTERNAL_SERVICES = (
    "pickup unix n - y 60 1 pickup",
    "cleanup unix n - y - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "tlsmgr unix - - y 1000? 1 tlsmgr",
    "rewrite unix - - y - - trivial-rewrite",
    "bounce unix - - y - 0 bounce",
    "defer unix - - y - 0 bounce",
    "trace unix - - y - 0 bounce",
    "verify unix - - y - 1 verify",
    "flush unix n - y 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp unix - - y - - smtp",
    "relay unix - - y - - smtp",
    "showq unix n - y - - showq",
    "error unix - - y - - error",
    "retry unix - - y - - error",
    "discard unix - - y - - discard",
    "local unix - n n - - local",
    "virtual unix - n n - - virtual",
    "lmtp unix - - y - - lmtp",
    "anvil unix - - y - 1 anvil",
    "scache unix - - y - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
)

_SUBMISSION = (
    "smtpd_sasl_auth_enable=yes",
    "smtpd_tls_auth_only=yes",
    "smtpd_reject_unlisted_recipient=no",
    "smtpd_client_restrictions=",
    "smtpd_helo_restrictions=",
    "smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject",
    "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    "smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
    "milter_macro_daemon_name=ORIGINATING",
)


def master_cf(ctx: RenderContext, *, mailserver: bool) -> list[str]:
    internal = [*_INTERNAL_SERVICES]
    if not mailserver:
        return ["smtp inet n - y - - smtpd", *internal]
    at = proxied_address(ctx)
    # Whatever address a PROXY header names, it is never one of ours.
    proxied = ("smtpd_upstream_proxy_protocol=haproxy", "mynetworks=")
    return [
        "# Programs on this host (a web application, monitoring) send through loopback.",
        "127.0.0.1:smtp inet n - y - - smtpd",
        "# Behind the gateway: the tunnel address only, each connection after a PROXY header.",
        *_service(
            f"{at}:{PROXIED_SERVICES[25]} inet n - y - - smtpd",
            *proxied,
            # Mail from other servers is never signed: the milters of main.cf sign ours.
            "smtpd_milters=",
        ),
        *_service(
            f"{at}:{PROXIED_SERVICES[587]} inet n - y - - smtpd",
            "syslog_name=postfix/submission",
            *proxied,
            "smtpd_tls_security_level=encrypt",
            *_SUBMISSION,
        ),
        *_service(
            f"{at}:{PROXIED_SERVICES[465]} inet n - y - - smtpd",
            "syslog_name=postfix/submissions",
            *proxied,
            "smtpd_tls_wrappermode=yes",
            "smtpd_tls_security_level=encrypt",
            *_SUBMISSION,
        ),
        *internal,
    ]


def proxied_address(ctx: RenderContext) -> str:
    """The mail server's tunnel address as master.cf names a host: where the gateway's
    connections arrive."""
    address = ctx.host.tunnel_address if ctx.spoke_of else ""
    try:
        parsed = ipaddress.ip_address(one_line(address))
    except ValueError:
        raise RenderError(
            f"{ctx.host} receives mail through the gateway's PROXY header, so it must be a spoke "
            "of a tunnel and have a tunnel address."
        ) from None
    return f"[{parsed}]" if parsed.version == 6 else str(parsed)


def _service(columns: str, *options: str) -> list[str]:
    return [columns, *(f"  -o {option}" for option in options)]


def _check_script(postmapped: Iterable[str], first: list[str], certificates=()) -> str:
    """Check the staged configuration with Postfix itself, in a scratch copy whose queue and
    data directories are throwaway (``postfix check`` creates them) and whose log goes to
    stdout (there may be no syslog). A misspelled parameter is only a warning for Postfix;
    here it fails the check."""
    return "\n".join(
        [
            "set -eu",
            *first,
            'scratch="$(mktemp -d)"',
            "trap 'rm -rf \"$scratch\"' EXIT",
            f'cp "$STAGE"{CONFIG_DIR}/main.cf "$STAGE"{CONFIG_DIR}/master.cf "$scratch/"',
            'mkdir -p "$scratch/queue" "$scratch/data" "$scratch/maps"',
            'postconf -c "$scratch" -e "queue_directory=$scratch/queue" '
            '"data_directory=$scratch/data" "maillog_file=/dev/stdout"',
            # Postfix waits, a second at a time, until main.cf is more than a second old before
            # it reads it (util/dict_load_file.c: "pausing to let ... finish being updated"):
            # the file just edited would cost every Postfix command below up to 2 s.
            'touch -d @0 "$scratch/main.cf"',
            'warnings="$(postconf -c "$scratch" -n 2>&1 >/dev/null)" || status=$?',
            'if [ -n "$warnings" ] || [ "${status:-0}" != 0 ]; then',
            '  echo "$warnings" >&2',
            "  exit 1",
            "fi",
            # Its warnings about the scratch queue's owners are noise: show the rest.
            'report="$(postfix -c "$scratch" check 2>&1)" || { echo "$report"; exit 1; }',
            'printf "%s\\n" "$report" | grep -vF "$scratch" || true',
            *(line for path in postmapped for line in _staged_postmap(path, certificates)),
        ]
    )


def _staged_postmap(path: str, certificates=()) -> list[str]:
    """Copy a staged map into the scratch directory and build it there, as activation will.
    The SNI map's certificate files are read from the stage where this deployment brings them
    (Mailgate's own certificates, ``certs.deploy``), else from where they are on the host."""
    name = shell_quote(PurePosixPath(path).name)
    copy = f'"$scratch/maps/"{name}'
    staged = (
        [
            f'if [ -r "$STAGE"{shell_quote(file)} ]; then '
            f"sed -i 's|{file}|'\"$STAGE\"'{file}|' {copy}; fi"
            for file in certificates
        ]
        if path == SNI_MAP
        else []
    )
    return [
        f'cp "$STAGE"{shell_quote(path)} "$scratch/maps/"',
        *staged,
        f'postmap {_postmap_flags(path)}-c "$scratch" "hash:$scratch/maps/"{name}',
    ]


def _certificate_paths(ctx: RenderContext) -> list[str]:
    return [path for paths in ctx.other_certificates.values() for path in paths]


def _certificate_check(ctx: RenderContext) -> list[str]:
    """Each other mail host name's certificate must be on the host before Postfix and Dovecot
    name it, or come in this deployment (Mailgate's own certificates, ``certs.deploy``): said
    plainly, rather than as postmap's or Dovecot's failure to open a file."""
    return [
        f'[ -r "$STAGE"{shell_quote(path)} ] || [ -r {shell_quote(path)} ] || '
        f"{{ echo {shell_quote(_missing(name, path))} >&2; exit 1; }}"
        for name, paths in ctx.other_certificates.items()
        for path in paths
    ]


def _missing(name: str, path: str) -> str:
    return (
        f"The certificate for {name} is missing: {path}. Get it first (certbot certonly -d "
        f"{name}), or name one certificate for every mail host name in the host's TLS files."
    )


def _reload() -> str:
    return f"postfix check && {systemd.reload('postfix')}"


def _is_hash_map(path: str) -> bool:
    return path.startswith(MAPS_DIR) and not path.endswith("sender_canonical")


def _override(settings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Later settings replace earlier ones in place, so every parameter appears once."""
    merged: dict[str, str] = {}
    for key, value in settings:
        merged[key] = value
    return list(merged.items())


def _egress_via_hub(ctx: RenderContext) -> bool:
    return bool(ctx.spoke_of and ctx.spoke_of.egress_via_hub)


def _lan_networks(host, *, mailserver: bool) -> list[str]:
    """LAN machines relay without logging in only through the relay host's plain smtpd. The
    mail server has no such listener (all but loopback read a PROXY header) and refuses them
    (``Host.clean``); a row saved before that rule fails here instead of being ignored."""
    if mailserver and host.lan_networks:
        raise RenderError(
            f"{host} lists LAN networks, but a mail server behind the gateway trusts no network: "
            "LAN machines send through 587 with a login, or through a relay host."
        )
    return [_postfix_network(net) for net in host.lan_networks]


def _postfix_network(network: str) -> str:
    try:
        parsed = ipaddress.ip_network(one_line(network))
    except ValueError:
        raise RenderError(f"{network!r} is not a network in CIDR form (LAN networks).") from None
    return f"[{parsed.network_address}]/{parsed.prefixlen}" if parsed.version == 6 else network


def _fingerprint(pem: str) -> str:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    digest = certificate.fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)
