"""nginx serving the OpenPGP Web Key Directory (WKD) on the gateway, and each domain's ``policy``.

The tree is the Mailu-behind-Traefik guide's *advanced* layout (``docs/reference-setups.md``),
``.well-known/openpgpkey/<domain>/hu/<hash>`` below the gateway's WKD root (``ctx.wkd_root``);
the keys themselves are added by the keys app.
The same server also answers the *direct* method (``https://<domain>/.well-known/openpgpkey/...``)
by mapping the bare domain in ``Host`` to that domain's folder, so one tree serves both layouts
and no key is stored twice.

The same server answers ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (MTA-STS, RFC 8461)
from ``<root>/mta-sts/<domain>/mta-sts.txt``, a folder the WKD locations never reach; the policy
files themselves are added by the zones app.

It also answers mail programs that look for their settings (docs/mailbox-features.md, Client
set-up): Thunderbird's ``GET /mail/config-v1.1.xml`` on ``autoconfig.<domain>`` (and
``/.well-known/autoconfig/mail/config-v1.1.xml`` on the domain) from
``<root>/client-setup/<domain>/config-v1.1.xml``, and Outlook's
``POST /autodiscover/autodiscover.xml`` on ``autodiscover.<domain>`` (or the domain): nginx takes
the address out of the request body
(only letters, digits and ``._+-`` in its local part, of a domain it serves), asks a loopback
server of its own for that domain's answer, ``<root>/client-setup/<domain>/autodiscover.xml``,
and puts the address into it as the login. The files come from ``gateway.client_setup``, the
same builders as the panel's own answers.

On the all-HAProxy gateway it also answers ACME HTTP-01 challenges (RFC 8555 §8.3), which
HAProxy's port 80 sends it by their path: ``/.well-known/acme-challenge/<token>`` from
``ACME_CHALLENGE_ROOT``, where Mailgate writes the key authorization of each of its own
challenges (``certs.issuer``); a token it does not have goes on to the mail server, so that a
certbot there (Mailu's own) keeps working.

Two flavours, one set of location rules:

- all-HAProxy gateway: nginx on the host, TLS on ``WKD_BACKEND`` behind HAProxy's SNI routing,
  the client address taken from HAProxy's PROXY v2 header; the HTTP-01 server beside it;
- Traefik gateway: the reference's ``wkd_nginx`` container on plain HTTP behind Traefik, its
  configuration bind-mounted from ``/opt/traefik/wkd/nginx.conf``.

nginx has no serializer, so the file is a text template; every value is checked with ``one_line``
and then against a narrow pattern, since a space, ``;`` or brace would end an nginx directive.
"""

import re

from gateway import client_setup
from gateway.bundle import File, RenderError, Unit
from gateway.writers import MANAGED, lines, one_line, shell_quote
from hosts.choices import GatewayProxy
from hosts.render import systemd, tls
from hosts.render.context import (
    ACME_CHALLENGE_BACKEND,
    ACME_CHALLENGE_PATH,
    ACME_CHALLENGE_ROOT,
    BASE64URL,
    CLIENT_SETUP_ANSWERS,
    WKD_BACKEND,
    WKD_CONTAINER,
    WKD_CONTAINER_CONF,
    WKD_CONTAINER_CONF_SOURCE,
    WKD_CONTAINER_IMAGE,
    WKD_CONTAINER_LISTEN,
    WKD_CONTAINER_ROOT,
    RenderContext,
)
from hosts.render.haproxy import (
    CLIENT_SETUP_PREFIXES,
    HTTP_PORT,
    MTA_STS_PREFIX,
    address_host,
    mailserver,
)

HOST_CONF = "/etc/nginx/conf.d/mailgate-wkd.conf"
CONTAINER_CONF = WKD_CONTAINER_CONF_SOURCE
CONTAINER = WKD_CONTAINER
CONTAINER_IMAGE = WKD_CONTAINER_IMAGE
CONTAINER_ROOT = WKD_CONTAINER_ROOT
CONTAINER_CONF_TARGET = WKD_CONTAINER_CONF
WELL_KNOWN = "/.well-known/openpgpkey"
MTA_STS_DIR = "/mta-sts"
SETUP_DIR = "/client-setup"
AUTOCONFIG_FILE = "config-v1.1.xml"
AUTODISCOVER_FILE = "autodiscover.xml"
# Outlook's request is a few hundred bytes; nginx reads it whole into memory to find the address.
AUTODISCOVER_BODY = "16k"

_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
# An address nginx may copy into an XML answer: nothing in it XML or nginx would read.
_ADDRESS_PATTERN = r"[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9.-]{1,253}"


def units(ctx: RenderContext) -> list[Unit]:
    """The WKD unit of a gateway: nginx's server, and per mail domain its WKD policy file and
    its answers to mail programs."""
    if not ctx.host.is_gateway or ctx.wkd_root is None:
        return []
    domains = [_domain(entry.name) for entry in ctx.directory.domains]
    served = (
        *(_policy(ctx.wkd_root, domain) for domain in domains),
        *(file for entry in ctx.directory.domains for file in _client_setup(ctx.wkd_root, entry)),
    )
    if ctx.host.gateway_proxy == GatewayProxy.HAPROXY:
        return [_host_unit(ctx, domains, served)]
    return [_container_unit(domains, served)]


def _host_unit(ctx: RenderContext, domains: list[str], served: tuple[File, ...]) -> Unit:
    conf = File(HOST_CONF, lines(_host_server(ctx, domains)), mode=0o644)
    return Unit(
        name="wkd-nginx",
        files=(conf, *served),
        checks=(_nginx_test(HOST_CONF, staged=(ctx.certificate, ctx.certificate_key)),),
        activate=(systemd.reload("nginx"),),
    )


def _container_unit(domains: list[str], served: tuple[File, ...]) -> Unit:
    conf = File(CONTAINER_CONF, lines(_container_server(domains)), mode=0o644)
    return Unit(
        name="wkd-nginx",
        files=(conf, *served),
        checks=(_container_nginx_test(),),
        activate=(_container_reload(),),
    )


def mta_sts_policy_path(root: str, domain: str) -> str:
    """Where a domain's MTA-STS policy lies under the gateway's WKD root."""
    return f"{_path(root)}{MTA_STS_DIR}/{_domain(domain)}/mta-sts.txt"


def _policy(wkd_root: str, domain: str) -> File:
    # An empty policy is valid; this is the line gpg-wks-client --install-key writes.
    body = lines([f"# Policy flags for domain {domain}"])
    return File(f"{_path(wkd_root)}{WELL_KNOWN}/{domain}/policy", body, mode=0o644)


def _client_setup(wkd_root: str, entry) -> tuple[File, File]:
    """A domain's answers to mail programs; Outlook's names ``%EMAILADDRESS%`` as the login,
    which nginx replaces with the address asked for (Thunderbird replaces it itself)."""
    domain, host = _domain(entry.name), _domain(entry.mail_hostname)
    folder = f"{_path(wkd_root)}{SETUP_DIR}/{domain}"
    account = client_setup.Account(client_setup.ADDRESS_PLACEHOLDER, "", host)
    answers = (
        (AUTOCONFIG_FILE, client_setup.autoconfig(domain=domain, mail_hostname=host)),
        (AUTODISCOVER_FILE, client_setup.autodiscover(account)),
    )
    return tuple(File(f"{folder}/{name}", _managed(xml), mode=0o644) for name, xml in answers)


def _managed(xml: bytes) -> bytes:
    """The file says it is Mailgate's, in a comment after the XML declaration (which must come
    first)."""
    declaration, rest = xml.split(b"\n", 1)
    return b"\n".join([declaration, f"<!-- {MANAGED} -->".encode(), rest])


# --- the configuration ---------------------------------------------------------------------------


def _host_server(ctx: RenderContext, domains: list[str]) -> list[str]:
    address, port = WKD_BACKEND
    # The bare domains are named too: they are the Host of the direct method.
    names = [
        name
        for domain in domains
        for name in (
            f"openpgpkey.{domain}",
            domain,
            f"{MTA_STS_PREFIX}{domain}",
            *(f"{prefix}{domain}" for prefix in CLIENT_SETUP_PREFIXES),
        )
    ]
    return [
        "# Web Key Directory (OpenPGP) behind HAProxy, which passes TLS for SNI",
        "# openpgpkey.<domain> to this server with a PROXY v2 header in front of it.",
        *_domain_map(domains),
        "",
        "server {",
        f"    listen {one_line(address)}:{int(port)} ssl proxy_protocol;",
        f"    server_name {' '.join(names) or '_'};",
        "",
        f"    ssl_certificate {_path(ctx.certificate)};",
        f"    ssl_certificate_key {_path(ctx.certificate_key)};",
        "    # Mozilla's intermediate TLS profile, as on every endpoint Mailgate sets up.",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        f"    ssl_ciphers {tls.INTERMEDIATE_CIPHERS};",
        "    ssl_prefer_server_ciphers off;",
        "    ssl_session_tickets off;",
        "",
        "    # Log the client, not HAProxy: its address comes in the PROXY header.",
        f"    set_real_ip_from {one_line(address)};",
        "    real_ip_header proxy_protocol;",
        "",
        f"    root {_path(ctx.wkd_root)};",
        *_locations(),
        "}",
        *_answers_server(_path(ctx.wkd_root)),
        *_challenges_server(ctx),
    ]


def _container_server(domains: list[str]) -> list[str]:
    listen_address, listen_port = WKD_CONTAINER_LISTEN
    return [
        "# Web Key Directory (OpenPGP) in the wkd_nginx container: Traefik terminates TLS for",
        "# openpgpkey.<domain> and passes plain HTTP to this loopback port (both containers",
        "# run on the host's network).",
        *_domain_map(domains),
        "",
        "server {",
        f"    listen {one_line(listen_address)}:{int(listen_port)} default_server;",
        "    server_name _;",
        "",
        f"    root {CONTAINER_ROOT};",
        *_locations(),
        "}",
        *_answers_server(CONTAINER_ROOT),
    ]


def _domain_map(domains: list[str]) -> list[str]:
    # Only listed domains map to a folder: an unknown Host can never choose a path.
    return [
        "",
        "# The direct method's Host (a bare mail domain) names its folder in the advanced tree.",
        "map $host $mailgate_wkd_domain {",
        '    default "";',
        *(f"    {domain} {domain};" for domain in domains),
        "}",
        "",
        "# mta-sts.<domain> names the folder of that domain's MTA-STS policy.",
        "map $host $mailgate_mta_sts_domain {",
        '    default "";',
        *(f"    {MTA_STS_PREFIX}{domain} {domain};" for domain in domains),
        "}",
        "",
        "# autoconfig.<domain> and the bare domain name the folder of that domain's client setup.",
        "map $host $mailgate_setup_domain {",
        '    default "";',
        *(
            f"    {name} {domain};"
            for domain in domains
            for name in (f"autoconfig.{domain}", domain)
        ),
        "}",
        "",
        "# Outlook posts <EMailAddress>: only a plain address of a domain served here is taken.",
        "map $request_body $mailgate_autodiscover_address {",
        '    default "";',
        f'    "~<EMailAddress>\\s*(?<address>{_ADDRESS_PATTERN})\\s*</EMailAddress>" $address;',
        "}",
        "map $mailgate_autodiscover_address $mailgate_autodiscover_domain {",
        '    default "";',
        *(f"    ~*@{re.escape(domain)}$ {domain};" for domain in domains),
        "}",
        "",
        "# What the answers server is asked for, by the server above only: a domain served here.",
        "map $http_x_mailgate_domain $mailgate_answer_domain {",
        '    default "";',
        *(f"    {domain} {domain};" for domain in domains),
        "}",
    ]


def _answers_server(root: str) -> list[str]:
    """A loopback server that hands a domain's autodiscover answer to a GET: nginx serves no
    file to a POST, so the public server asks this one, without the body."""
    address, port = CLIENT_SETUP_ANSWERS
    return [
        "",
        "# The autodiscover answers, asked for by the server above (loopback only).",
        "server {",
        f"    listen {one_line(address)}:{int(port)};",
        "    server_name _;",
        f"    root {root};",
        "    location / {",
        "        types { }",
        "        default_type application/xml;",
        f"        try_files {SETUP_DIR}/$mailgate_answer_domain/{AUTODISCOVER_FILE} =404;",
        "    }",
        "}",
    ]


def _challenges_server(ctx: RenderContext) -> list[str]:
    """ACME HTTP-01 behind HAProxy's port 80: Mailgate's tokens from its challenge folder, any
    other request on to the mail server as it came (a certbot there answers its own)."""
    home = mailserver(ctx)
    if home is None:
        return []  # HAProxy is not rendered either: nothing sends challenges here yet
    address, port = ACME_CHALLENGE_BACKEND
    token = f"^{_literal(ACME_CHALLENGE_PATH)}(?<mailgate_acme_token>{BASE64URL})$"
    to_home = [
        f"        proxy_pass http://{address_host(home.address)}:{int(HTTP_PORT)};",
        "        proxy_set_header Host $host;",
    ]
    return [
        "",
        "# ACME HTTP-01 (RFC 8555 §8.3), from HAProxy's port 80: the key authorizations of",
        "# Mailgate's own challenges, a file per token; every other token to the mail server.",
        "server {",
        f"    listen {one_line(address)}:{int(port)};",
        "    server_name _;",
        f"    root {_path(ACME_CHALLENGE_ROOT)};",
        f'    location ~ "{token}" {{',
        "        default_type application/octet-stream;",
        "        try_files /$mailgate_acme_token @mailserver;",
        "    }",
        "    location / {",
        *to_home,
        "    }",
        "    location @mailserver {",
        *to_home,
        "    }",
        "}",
    ]


def _locations() -> list[str]:
    """The location rules both flavours share: the guide's, plus the direct method."""
    return [
        "",
        "    # Advanced method: https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>",
        f"    location {WELL_KNOWN}/ {{",
        *_serving_rules("$uri"),
        "    }",
        "",
        "    # Direct method: https://<domain>/.well-known/openpgpkey/hu/<hash> and .../policy,",
        "    # answered from the domain's folder of the same tree.",
        r"    location ~ ^/\.well-known/openpgpkey/(?<mailgate_wkd_file>hu/[^/]+|policy)$ {",
        '        if ($mailgate_wkd_domain = "") {',
        "            return 404;",
        "        }",
        *_serving_rules(f"{WELL_KNOWN}/$mailgate_wkd_domain/$mailgate_wkd_file"),
        "    }",
        "",
        "    # MTA-STS policy (RFC 8461): https://mta-sts.<domain>/.well-known/mta-sts.txt",
        "    location = /.well-known/mta-sts.txt {",
        '        if ($mailgate_mta_sts_domain = "") {',
        "            return 404;",
        "        }",
        "        default_type text/plain;",
        f"        try_files {MTA_STS_DIR}/$mailgate_mta_sts_domain/mta-sts.txt =404;",
        "    }",
        "",
        "    # Thunderbird: https://autoconfig.<domain>/mail/config-v1.1.xml, and",
        "    # https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml",
        r"    location ~ ^/(\.well-known/autoconfig/)?mail/config-v1\.1\.xml$ {",
        '        if ($mailgate_setup_domain = "") {',
        "            return 404;",
        "        }",
        "        types { }",
        "        default_type application/xml;",
        f"        try_files {SETUP_DIR}/$mailgate_setup_domain/{AUTOCONFIG_FILE} =404;",
        "    }",
        "",
        "    # Outlook: POST https://autodiscover.<domain>/autodiscover/autodiscover.xml",
        r"    location ~* ^/autodiscover/autodiscover\.xml$ {",
        f"        client_max_body_size {AUTODISCOVER_BODY};",
        f"        client_body_buffer_size {AUTODISCOVER_BODY};",
        "        proxy_method GET;",
        "        proxy_pass_request_body off;",
        '        proxy_set_header Content-Length "";',
        "        proxy_set_header X-Mailgate-Domain $mailgate_autodiscover_domain;",
        f"        proxy_pass http://{one_line(CLIENT_SETUP_ANSWERS[0])}:{int(CLIENT_SETUP_ANSWERS[1])};",
        "        sub_filter_types application/xml;",
        "        sub_filter_once off;",
        f'        sub_filter "{client_setup.ADDRESS_PLACEHOLDER}" $mailgate_autodiscover_address;',
        "    }",
        "",
        "    # Only these are served: anything else under the root answers 404.",
        "    location / {",
        "        return 404;",
        "    }",
    ]


def _serving_rules(file: str) -> list[str]:
    return [
        "        # Binary keys, as WKD asks; readable by browser-based clients too.",
        "        default_type application/octet-stream;",
        "        add_header Access-Control-Allow-Origin * always;",
        "        autoindex off;",
        f"        try_files {file} =404;",
    ]


# --- checks and activation -----------------------------------------------------------------------


# A main configuration around the staged file, everything nginx writes kept in the temp folder.
_TEST_MAIN = (
    "pid $dir/nginx.pid;",
    "error_log $dir/error.log;",
    "events {}",
    "http {",
    "  include /etc/nginx/mime.types;",
    "  access_log $dir/access.log;",
    '  include "$conf";',
    "}",
)


def _nginx_test(conf: str, staged: tuple[str, ...] = ()) -> str:
    """``nginx -t`` on the staged file, included alone from a throwaway main configuration.
    The files in ``staged`` (the certificate and its key) are read from the stage where this
    deployment brings them (Mailgate's own certificates, ``certs.deploy``), else from where
    they are on the host: the first deployment of a new gateway can then pass."""
    write_main = [f'    echo "{line}"'.replace('"$conf"', '\\"$conf\\"') for line in _TEST_MAIN]
    from_stage = [
        f'  if [ -r "$STAGE"{shell_quote(path)} ]; then '
        f"sed -i 's|{_path(path)};|'\"$STAGE\"'{_path(path)};|' \"$conf\"; fi"
        for path in staged
    ]
    copy = ['  cp "$STAGE"' + shell_quote(conf) + ' "$dir/site.conf"', '  conf="$dir/site.conf"']
    return "\n".join(
        [
            "(",
            f'  conf="$STAGE"{shell_quote(conf)}',
            "  dir=$(mktemp -d) || exit 1",
            "  trap 'rm -rf \"$dir\"' EXIT",
            *(copy + from_stage if staged else []),
            "  {",
            *write_main,
            '  } >"$dir/nginx.conf"',
            '  nginx -t -q -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf"',
            ")",
        ]
    )


def _container_nginx_test() -> str:
    # The host of a Traefik gateway may have no nginx of its own: then test with the image.
    mount = f'"$STAGE"{shell_quote(CONTAINER_CONF)}:{shell_quote(CONTAINER_CONF_TARGET + ":ro")}'
    image = shell_quote(CONTAINER_IMAGE)
    return "\n".join(
        [
            "if command -v nginx >/dev/null 2>&1; then",
            _nginx_test(CONTAINER_CONF),
            "else",
            f"  docker run --rm --network none -v {mount} {image} nginx -t -q",
            "fi",
        ]
    )


def _container_reload() -> str:
    # Until the compose unit has started the container there is nothing to reload. A single
    # bind-mounted file that was replaced (new inode) stays old inside a running container, so
    # when the container does not see the new file, restart it to mount the file afresh.
    container, target, conf = map(shell_quote, (CONTAINER, CONTAINER_CONF_TARGET, CONTAINER_CONF))
    running = f"docker inspect --format '{{{{.State.Running}}}}' {container} 2>/dev/null"
    return "\n".join(
        [
            f'if [ "$({running})" = true ]; then',
            f"  if docker exec {container} cat {target} | cmp -s - {conf}; then",
            f"    docker exec {container} nginx -s reload",
            "  else",
            f"    docker restart {container}",
            "  fi",
            "fi",
        ]
    )


# --- values --------------------------------------------------------------------------------------


def _literal(path) -> str:
    """A path of ``_PATH``'s letters as a regular expression that matches it alone."""
    return _path(path).replace(".", r"\.").replace("+", r"\+")


def _domain(value) -> str:
    return _checked(value, _DOMAIN, "a lowercase ASCII domain name")


def _path(value) -> str:
    return _checked(value, _PATH, "an absolute path of letters, digits and ._@+-/")


def _checked(value, pattern: re.Pattern, what: str) -> str:
    text = one_line(value)
    if not pattern.fullmatch(text) or "/../" in f"{text}/":
        raise RenderError(f"Refusing to write {text!r} into nginx's configuration: not {what}.")
    return text
