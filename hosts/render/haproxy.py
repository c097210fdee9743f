"""HAProxy on the gateway: TCP forwarding through the tunnel to the home mail server, each
connection preceded by a PROXY v2 header so the mail server sees the client's address.

Two uses share one writer, ``haproxy_cfg``:

- the all-HAProxy gateway (``gateway_proxy == "haproxy"``): ``/etc/haproxy/haproxy.cfg`` for every
  port the mail server expects PROXY v2 on, 443 routed by the TLS server name (SNI) between the
  mail server and the local WKD nginx, and port 80 read as HTTP: ACME HTTP-01 challenges
  (``/.well-known/acme-challenge/``) go to the gateway's nginx, which answers Mailgate's own and
  passes the others on, and every other request goes to the mail server (no PROXY header), so
  that a certbot there keeps working;
- the Traefik gateway: the Mailu-behind-Traefik guide's ``haproxy25`` container
  (docs/reference-setups.md, "The guides these setups follow") for port 25 alone (Traefik cannot
  serve server-first SMTP); its file is written here, its unit lives in ``traefik``.

HAProxy reads a line format, so every value passes ``one_line`` and then a narrow pattern: a
space would start a new keyword on the same line.

Names differ from the guide's file on purpose: backends are ``mailserver_<service>`` and the server
is named after the mail server host (the guide's ``mailu_smtp``/``mailu``), since the home server
may run Postfix + Dovecot rather than Mailu. The directives are the guide's.

The public names (mail host names, and the ``openpgpkey.`` names of WKD, ``mta-sts.`` names of
MTA-STS and ``autoconfig.``/``autodiscover.`` names of client setup that the gateway's own nginx
serves) are built here too, because both gateway proxies route by them.
"""

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.bundle import File, RenderError, Unit
from gateway.selectors import MailDirectory
from gateway.writers import dns_name, lines, one_line, shell_quote
from hosts.choices import GatewayProxy, MailBackend
from hosts.render import systemd
from hosts.render.context import (
    ACME_CHALLENGE_BACKEND,
    ACME_CHALLENGE_PATH,
    HTTPS_PORT,
    MAIL_PORTS,
    SIEVE_PORT,
    WKD_BACKEND,
    RenderContext,
)

CONFIG = "/etc/haproxy/haproxy.cfg"
SMTP_ONLY_CONFIG = "/opt/traefik/haproxy-config/haproxy.cfg"
HTTP_PORT = 80
# Who HAProxy runs as once its ports are bound: Debian's package's user on a host; in the
# official image (docker-library/haproxy), its haproxy user, uid and gid 99. The image starts as
# that user, which cannot bind port 25 on the host's network, so the compose file starts it as
# root and the configuration drops to uid 99 (the proxy guard lets that uid out).
HOST_USER = "haproxy"
CONTAINER_UID = 99
SERVICES = {**MAIL_PORTS, SIEVE_PORT: "sieve", HTTPS_PORT: "https", HTTP_PORT: "http"}
# One health check per mail server, on its SMTP port, once a minute; every other backend of
# that server tracks its result. The guide checks each port every 5 s, and each check is a
# connection without a PROXY header that the mail server logs as an error: with five ports that
# is 86,000 log lines a day. With send-proxy-v2, HAProxy's checks would open with a PROXY
# "LOCAL" header instead, which makes Postfix's smtpd die ("smtpd_peer_hostaddr_to_sockaddr:
# cannot convert client address") and its master throttle the service (seen in the gateway
# lab); naming the check's port turns the header off for checks only: a plain connect.
HEALTH_CHECK = "check port {port} inter 60s fastinter 5s rise 2 fall 2"
CHECKED_PORT = 25
# Port 80 carries ACME HTTP-01 challenges to a client that may start only for the renewal: a
# health check would mark it up seconds after the validation failed, so it has none. Nor has
# the gateway's own nginx for them: it runs beside HAProxy, and an order it fails says so.
UNCHECKED_PORTS = (HTTP_PORT, ACME_CHALLENGE_BACKEND[1])
# IMAP IDLE leaves a connection silent for up to 29 minutes (RFC 2177), and Dovecot's "still
# here" comes every 2 minutes, exactly the guide's client/server timeout: give IMAP room.
IMAP_TUNNEL_TIMEOUT = "timeout tunnel 30m"
# Port 80 is read as HTTP: a client gets 10 s for its request's headers, not the 2 minutes a
# mail connection has, so slow half-requests cannot hold HAProxy's connections.
HTTP_REQUEST_TIMEOUT = "timeout http-request 10s"
MAIL_NAME_PREFIXES = ("", "autoconfig.", "autodiscover.", "mta-sts.")
WKD_PREFIX = "openpgpkey."
MTA_STS_PREFIX = "mta-sts."
# Where mail programs look for their settings (Thunderbird's autoconfig, Outlook's
# autodiscover); the gateway's nginx answers them for both mail backends.
CLIENT_SETUP_PREFIXES = ("autoconfig.", "autodiscover.")

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]+")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")


@dataclass(frozen=True)
class Server:
    """Where a backend sends connections; ``proxy_header`` adds ``send-proxy-v2``."""

    name: str
    address: str
    port: int
    proxy_header: bool = True


@dataclass(frozen=True)
class Peer:
    """A host the gateway forwards to: its name (for logs) and its address in the tunnel."""

    name: str
    address: str

    def at(self, port: int, *, proxy_header: bool = True) -> Server:
        return Server(self.name, self.address, port, proxy_header)


@dataclass(frozen=True)
class Backend:
    name: str
    server: Server
    settings: tuple[str, ...] = ()  # extra lines, e.g. a longer tunnel timeout
    http: bool = False  # HTTP mode: HAProxy reads each request (port 80)


@dataclass(frozen=True)
class Frontend:
    """One listening port; with ``by_sni`` the TLS server name picks the backend, with
    ``by_path`` (an HTTP frontend, its default backend in HTTP mode) the request's path."""

    name: str
    port: int
    default: Backend
    by_sni: tuple[tuple[Backend, tuple[str, ...]], ...] = ()
    by_path: tuple[tuple[Backend, str], ...] = ()  # (backend, path prefix)


def units(ctx: RenderContext) -> list[Unit]:
    """The all-HAProxy gateway's unit; the Traefik gateway's HAProxy is in ``traefik``."""
    if not (ctx.host.is_gateway and ctx.host.gateway_proxy == GatewayProxy.HAPROXY):
        return []
    home = mailserver(ctx)
    if home is None:
        return []  # no mail server in the tunnel yet: nothing to forward to
    content = haproxy_cfg(
        gateway_frontends(ctx, home), ipv6=bool(ctx.host.public_ipv6), run_as=HOST_USER
    )
    return [
        Unit(
            name="haproxy",
            files=(File(CONFIG, content),),
            checks=(f'haproxy -c -f "$STAGE"{shell_quote(CONFIG)}',),
            activate=(systemd.reload("haproxy"),),
        )
    ]


def smtp_only_cfg(home: Peer, *, ipv6: bool) -> bytes:
    """The guide's ``haproxy25`` file: port 25 to the mail server, nothing else. The
    container runs on the host's network, so it binds IPv6 itself where the gateway has it."""
    return haproxy_cfg([_forward(home, 25)], ipv6=ipv6, run_as=CONTAINER_UID)


# --- what the gateway forwards -------------------------------------------------------------------


def mailserver(ctx: RenderContext) -> Peer | None:
    """The home mail server as a server line's target, reached through the tunnel."""
    peer = ctx.mailserver_peer
    if peer is None:
        return None
    if not peer.host.tunnel_address:
        raise RenderError(f"Give the mail server {peer.host} its tunnel address first.")
    return Peer(_identifier(peer.host.name), str(peer.host.tunnel_address))


def gateway_frontends(ctx: RenderContext, home: Peer) -> list[Frontend]:
    """Every port the mail server serves, through the tunnel with a PROXY header; HTTP (ACME
    challenges, ``_http``) without one. Mailu serves them all, HTTPS (admin, webmail) included;
    Postfix + Dovecot only SMTP, submission and IMAPS: forwarding the others (995, 4190, 443)
    would only lead clients to a closed port, so on 443 the gateway's own nginx (WKD, MTA-STS)
    answers."""
    mailu = ctx.mailserver_peer.host.mail_backend == MailBackend.MAILU
    ports = ctx.served_ports
    forwarded = [_forward(home, port) for port in ports if port != HTTPS_PORT]
    return sorted([*forwarded, _https(ctx, home, mailu=mailu), _http(home)], key=_by_port)


def _http(home: Peer) -> Frontend:
    """Port 80 as HTTP: ACME HTTP-01 challenges (RFC 8555 §8.3) go to the gateway's nginx,
    which serves the tokens Mailgate wrote and passes the others on to the mail server (a
    certbot there); every other request goes to the mail server. Neither gets a PROXY header."""
    address, port = ACME_CHALLENGE_BACKEND
    challenges = Backend("acme_nginx", Server("acme_nginx", address, port, False), http=True)
    mail = _backend(home, HTTP_PORT, proxy_header=False, http=True)
    return Frontend(
        f"{SERVICES[HTTP_PORT]}_in",
        HTTP_PORT,
        default=mail,
        by_path=((challenges, ACME_CHALLENGE_PATH),),
    )


def _https(ctx: RenderContext, home: Peer, *, mailu: bool) -> Frontend:
    address, port = WKD_BACKEND
    wkd = Backend("wkd_https", Server("wkd_nginx", address, port))
    if not mailu:
        return Frontend("https_in", HTTPS_PORT, default=wkd)
    mail = _backend(home, HTTPS_PORT)
    names = ((wkd, tuple(web_names(ctx.directory))), (mail, tuple(mail_names(ctx.directory))))
    return Frontend("https_in", HTTPS_PORT, default=mail, by_sni=names)


def _forward(home: Peer, port: int) -> Frontend:
    backend = _backend(home, port)
    return Frontend(f"{SERVICES[port]}_in", port, default=backend)


def _backend(home: Peer, port: int, *, proxy_header: bool = True, http: bool = False) -> Backend:
    server = home.at(port, proxy_header=proxy_header)
    settings = (IMAP_TUNNEL_TIMEOUT,) if SERVICES[port] == "imaps" else ()
    return Backend(f"mailserver_{SERVICES[port]}", server, settings, http=http)


def _by_port(frontend: Frontend) -> int:
    return frontend.port


def mail_names(directory: MailDirectory) -> list[str]:
    """Every mail host name with its autoconfig/autodiscover/MTA-STS names, as in the guide."""
    hosts = sorted({dns_name(domain.mail_hostname) for domain in directory.domains})
    return [f"{prefix}{host}" for host in hosts for prefix in MAIL_NAME_PREFIXES]


def web_names(directory: MailDirectory) -> list[str]:
    """The names the gateway's nginx serves for every mail domain: ``openpgpkey.<domain>`` (the
    WKD advanced method's host), ``mta-sts.<domain>`` (the MTA-STS policy host) and the client
    setup hosts ``autoconfig.<domain>`` and ``autodiscover.<domain>``."""
    prefixes = (WKD_PREFIX, MTA_STS_PREFIX, *CLIENT_SETUP_PREFIXES)
    return sorted(
        {f"{prefix}{dns_name(domain.name)}" for domain in directory.domains for prefix in prefixes}
    )


# --- the file ------------------------------------------------------------------------------------


def haproxy_cfg(frontends: Sequence[Frontend], *, ipv6: bool, run_as: str | int) -> bytes:
    """A TCP-mode haproxy.cfg for these frontends and the backends they use."""
    backends = _backends(frontends)
    checked = _checked_backends(backends)
    return lines(
        [
            *_global(run_as),
            *_defaults(),
            *(line for frontend in frontends for line in _frontend(frontend, ipv6=ipv6)),
            *(line for backend in backends for line in _backend_block(backend, checked)),
        ]
    )


def _global(run_as: str | int) -> list[str]:
    """HAProxy starts as root to bind the ports, then drops to ``run_as``: a user's name, or a
    uid (and the gid of the same number)."""
    if isinstance(run_as, int):
        user = [f"  uid {run_as}", f"  gid {run_as}"]
    else:
        user = [f"  user {_identifier(run_as)}", f"  group {_identifier(run_as)}"]
    return [
        "global",
        "  # log to stdout: the journal under systemd, `docker logs` in a container",
        "  log stdout format raw local0",
        "  master-worker",
        *user,
    ]


def _defaults() -> list[str]:
    return [
        "",
        "defaults",
        "  mode tcp",
        "  log global",
        "  option tcplog",
        "  timeout connect 5s",
        "  timeout client  2m",
        "  timeout server  2m",
    ]


def _frontend(frontend: Frontend, *, ipv6: bool) -> list[str]:
    port = _port(frontend.port)
    binds = [f"  bind :{port}", *([f"  bind [::]:{port} v6only"] if ipv6 else [])]
    http = (
        ["  mode http", "  option httplog", f"  {HTTP_REQUEST_TIMEOUT}"]
        if frontend.default.http
        else []
    )
    return [
        "",
        f"frontend {_identifier(frontend.name)}",
        *http,
        *binds,
        *_sni_routing(frontend.by_sni),
        *_path_routing(frontend.by_path),
        f"  default_backend {_identifier(frontend.default.name)}",
    ]


def _sni_routing(routes: Iterable[tuple[Backend, tuple[str, ...]]]) -> list[str]:
    routes = [(backend, names) for backend, names in routes if names]
    if not routes:
        return []
    rules = [
        "  # Wait for the TLS ClientHello: its server name (SNI) chooses the backend.",
        "  tcp-request inspect-delay 5s",
        "  tcp-request content accept if { req.ssl_hello_type 1 }",
    ]
    for backend, names in routes:
        acl = f"sni_{_identifier(backend.name)}"
        # One name per line: ACL lines of the same name add up, and no line grows too long.
        rules += [f"  acl {acl} req.ssl_sni -i {dns_name(name)}" for name in names]
        rules.append(f"  use_backend {_identifier(backend.name)} if {acl}")
    return rules


def _path_routing(routes: Sequence[tuple[Backend, str]]) -> list[str]:
    rules = ["  # The request's path chooses the backend."] if routes else []
    for backend, prefix in routes:
        acl = f"path_{_identifier(backend.name)}"
        rules += [
            f"  acl {acl} path_beg {_url_path(prefix)}",
            f"  use_backend {_identifier(backend.name)} if {acl}",
        ]
    return rules


def _backends(frontends: Sequence[Frontend]) -> list[Backend]:
    """Each backend once, in the order the frontends first use it."""
    seen: dict[str, Backend] = {}
    for frontend in frontends:
        routed = (*frontend.by_sni, *frontend.by_path)
        for backend in (*(backend for backend, _ in routed), frontend.default):
            seen.setdefault(backend.name, backend)
    return sorted(seen.values(), key=lambda backend: (backend.server.port, backend.name))


def _checked_backends(backends: Sequence[Backend]) -> dict[str, str]:
    """For each server (by name): the one backend whose check speaks for it, its SMTP port
    where it has one."""
    checked: dict[str, str] = {}
    for backend in sorted(backends, key=lambda b: b.server.port != CHECKED_PORT):
        if backend.server.port not in UNCHECKED_PORTS:
            checked.setdefault(backend.server.name, backend.name)
    return checked


def _backend_block(backend: Backend, checked: dict[str, str]) -> list[str]:
    server = backend.server
    proxy = " send-proxy-v2" if server.proxy_header else ""
    why = (
        ["  # PROXY v2 toward the server so it sees the client's address"]
        if server.proxy_header
        else ["  # no PROXY header: plain HTTP, for ACME HTTP-01 challenges"]
    )
    return [
        "",
        f"backend {_identifier(backend.name)}",
        *(["  mode http"] if backend.http else []),
        *(f"  {one_line(setting)}" for setting in backend.settings),
        *why,
        f"  server {_identifier(server.name)} {_address(server.address, server.port)}"
        f"{proxy}{_health(backend, checked)}",
    ]


def _health(backend: Backend, checked: dict[str, str]) -> str:
    server = backend.server
    if server.port in UNCHECKED_PORTS:
        return ""
    speaker = checked[server.name]
    if backend.name == speaker:
        return " " + HEALTH_CHECK.format(port=_port(server.port))
    return f" track {_identifier(speaker)}/{_identifier(server.name)}"


# --- values --------------------------------------------------------------------------------------


def _identifier(value) -> str:
    text = one_line(value)
    if not _IDENTIFIER.fullmatch(text):
        raise RenderError(f"Refusing to write {text!r} into haproxy.cfg: not a plain name.")
    return text


def _url_path(value) -> str:
    text = one_line(value)
    if not _URL_PATH.fullmatch(text):
        raise RenderError(f"Refusing to write {text!r} into haproxy.cfg: not a plain URL path.")
    return text


def address_host(value) -> str:
    """An IP address as the host part of ``host:port`` or a URL (IPv6 in brackets); anything
    else is refused."""
    try:
        address = ipaddress.ip_address(one_line(value))
    except ValueError as error:
        raise RenderError(f"Refusing to forward to {value!r}: not an IP address.") from error
    return f"[{address}]" if address.version == 6 else str(address)


def _address(value, port: int) -> str:
    return f"{address_host(value)}:{_port(port)}"


def _port(value: int) -> int:
    if not isinstance(value, int) or not 0 < value < 65536:
        raise RenderError(f"Refusing the port {value!r}: not between 1 and 65535.")
    return value
