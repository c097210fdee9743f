"""Traefik on the gateway, as in the Mailu-behind-Traefik guide (``docs/reference-setups.md``):
Traefik passes TLS through to the home mail server on 443/465/993/995 and plain TCP on 4190,
HAProxy takes port 25 (SMTP speaks first, which Traefik's router cannot wait for), and an nginx
container serves the Web Key Directory behind Traefik. Everything lives in ``/opt/traefik``.

Where the files differ from the guide, on purpose:

- PROXY v2 comes from ``tcp.serversTransports`` (Traefik >= 3.5.2); the guide's
  ``loadBalancer.proxyProtocol`` is deprecated.
- The API only on 127.0.0.1:8081 (the guide opens an insecure one to the world on :8081), for
  the checks that ask Traefik what it loaded (``traefik_check``); no dashboard, no ``command:``
  flags (Traefik ignores traefik.yml when it gets any), log level INFO instead of DEBUG, and the
  Docker socket mounted read-only.
- Every container runs on the host's network instead of behind published ports: Docker's proxy
  would hand Traefik and HAProxy its bridge address for every IPv6 client, and the mail server
  judges senders by the address in the PROXY header. So Traefik reaches the WKD container on a
  loopback port, not by its name.
- WKD is routed from the file provider instead of container labels, beside the other routers, so
  the cross-reference checks below see it too.
- The dynamic folder and HAProxy's folder are mounted whole: a single bind-mounted file that is
  replaced on deployment (a new inode) stays old inside a running container.
- traefik.yml's digest is a label of the traefik service, so ``docker compose up -d`` recreates
  the container when its static configuration changes (Traefik reads that file only at start).
- The certificate resolvers ask the setup's ACME server, the one Mailgate's own ACME client
  asks (``ctx.acme``, from ``MAILGATE_ACME_DIRECTORY``): ``caServer`` names it unless it is
  Let's Encrypt's, Traefik's default; a CA file to trust for its HTTPS
  (``MAILGATE_ACME_CA_FILE``: a staging or private CA) is rendered beside traefik.yml for the
  resolvers' ``caCertificates``, and its digest joins the label (docs/traefik.md).

The YAML files are built as data, checked against the vendored JSON schemas and against the
cross-references the schemas cannot see (``problems``); any failure is a RenderError. On the
host, before activation, Traefik itself loads the staged files in the very image the gateway runs
(``traefik_check.staged_script``); after activation the deployment waits until the running
Traefik's file watcher has taken the new routers in (``traefik_check.live_script``).
"""

import hashlib
import ipaddress
import shlex
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.bundle import File, RenderError, Unit
from gateway.writers import dns_name, lines, one_line, shell_quote, yaml_document
from hosts.acme import LETS_ENCRYPT, AcmeServer
from hosts.choices import GatewayProxy
from hosts.render import haproxy, jsonschemas, tls, traefik_check
from hosts.render.context import (
    HTTPS_PORT,
    MAIL_PORTS,
    SIEVE_PORT,
    WKD_CONTAINER,
    WKD_CONTAINER_CONF,
    WKD_CONTAINER_CONF_SOURCE,
    WKD_CONTAINER_IMAGE,
    WKD_CONTAINER_LISTEN,
    WKD_CONTAINER_ROOT,
    RenderContext,
)

BASE = "/opt/traefik"
COMPOSE = f"{BASE}/docker-compose.yml"
STATIC = f"{BASE}/traefik-config/traefik.yml"
DYNAMIC_DIR = f"{BASE}/traefik-config/dynamic"
DYNAMIC = f"{DYNAMIC_DIR}/dynamic-mailu.yml"
ACME = f"{BASE}/traefik-config/acme.json"  # written by Traefik, never rendered
# The CAs Traefik's resolvers trust for the ACME server's HTTPS, when the setup names any
# (MAILGATE_ACME_CA_FILE: a staging or private CA); a folder, mounted whole.
TRUST_DIR = f"{BASE}/traefik-config/acme-ca"
TRUST = f"{TRUST_DIR}/ca.pem"
SECRET = f"{BASE}/secrets/cf_api_token"
HAPROXY_CONFIG = haproxy.SMTP_ONLY_CONFIG

TRAEFIK_IMAGE = "traefik:v3.5.3"
HAPROXY_IMAGE = "haproxy:3.2.7"
HAPROXY_CONTAINER = "haproxy25"

# HTTP/3 stays off (as in the guide): with it, browsers that try QUIC first reach Traefik's HTTP
# layer, where the passthrough TCP router for the mail names cannot match, and get a 404.
HTTP3 = False
API_ADDRESS = traefik_check.API_ADDRESS

IN_CONTAINER = {  # where the compose file mounts what traefik.yml names
    STATIC: "/etc/traefik/traefik.yml",
    DYNAMIC_DIR: "/etc/traefik/dynamic",
    ACME: "/etc/traefik/acme/acme.json",
    TRUST_DIR: "/etc/traefik/acme-ca",
    TRUST: "/etc/traefik/acme-ca/ca.pem",
    HAPROXY_CONFIG: "/usr/local/etc/haproxy/haproxy.cfg",
}
SECRET_NAME = "cf_api_token"  # noqa: S105 (the secret's name in compose, not a value)
_PORT = {service: port for port, service in MAIL_PORTS.items()}
ENTRY_POINTS = {
    "web": 80,
    "web-secure": HTTPS_PORT,
    "mailu-submissions": _PORT["submissions"],
    "mailu-submission": _PORT["submission"],
    "mailu-imaps": _PORT["imaps"],
    "mailu-pop3s": _PORT["pop3s"],
    "mailu-sieve": SIEVE_PORT,
}
# TCP router (and its service): entry point, TLS passed through or not. Each goes to the same
# port at home, where the mail server expects a PROXY v2 header (context.PROXY_PROTOCOL_PORTS).
# The names are the guide's (its home server is Mailu); a Postfix + Dovecot server gets the
# routes of the ports it serves (context.SERVED_PORTS), under the same names.
TCP_ROUTES = {
    "mailu-websecure": ("web-secure", True),
    "mailu-submissions": ("mailu-submissions", True),
    # Submission (587) and ManageSieve start in plain text (STARTTLS): there is no SNI to read,
    # so they are catch-alls on their own ports. The guide leaves 587 out, while Mailu opens it
    # and DNS advertises it.
    "mailu-submission": ("mailu-submission", False),
    "mailu-imaps": ("mailu-imaps", True),
    "mailu-pop3s": ("mailu-pop3s", True),
    "mailu-sieve": ("mailu-sieve", False),
}
PROXY_TRANSPORT = "ppv2"


def units(ctx: RenderContext) -> list[Unit]:
    if not (ctx.host.is_gateway and ctx.host.gateway_proxy == GatewayProxy.TRAEFIK_HAPROXY):
        return []
    home = haproxy.mailserver(ctx)
    if home is None:
        return []  # no mail server in the tunnel yet: nothing to forward to
    trust = _trust(ctx.acme)
    static_file = yaml_document(static(ctx))
    # What Traefik reads only when it starts: its static file, and the ACME server's CAs (its
    # ACME client is made once).
    digest = hashlib.sha256(static_file + (trust.content if trust else b"")).hexdigest()
    documents = {
        COMPOSE: yaml_document(compose(ctx, static_sha256=digest)),
        STATIC: static_file,
        DYNAMIC: yaml_document(dynamic(ctx, home)),
    }
    # Validate what will be written, read back, rather than the data it was made from.
    parsed = {path: yaml.safe_load(content) for path, content in documents.items()}
    validate(parsed)
    files = [
        *(File(path, content) for path, content in documents.items()),
        *([trust] if trust else []),
        File(HAPROXY_CONFIG, haproxy.smtp_only_cfg(home, ipv6=bool(ctx.host.public_ipv6))),
        *_secret(ctx),
    ]
    return [
        Unit(
            name="traefik",
            files=tuple(files),
            checks=(_compose_check(), _haproxy_check(), _traefik_check(parsed, trust=bool(trust))),
            activate=(_acme_storage(), _compose_up(), _haproxy_reload(), _live_check(parsed)),
        )
    ]


def _secret(ctx: RenderContext) -> list[File]:
    token = ctx.host.cloudflare_api_token
    if not token:
        return []
    # The token alone, without the managed-by header or a newline: the file is the value.
    return [File(SECRET, one_line(token).encode(), mode=0o600, secret=True)]


# --- traefik.yml ---------------------------------------------------------------------------------


def static(ctx: RenderContext) -> dict:
    """The static configuration. The API (no dashboard) answers on loopback only."""
    entry = {name: _entry_point(name, port) for name, port in entry_points(ctx).items()}
    return {
        "global": {"sendAnonymousUsage": False},
        "log": {"level": "INFO"},
        "api": {"dashboard": False, "insecure": True},
        "entryPoints": {**entry, traefik_check.API_ENTRY_POINT: {"address": API_ADDRESS}},
        "providers": {
            "file": {"directory": IN_CONTAINER[DYNAMIC_DIR], "watch": True},
            "docker": {"exposedByDefault": False, "watch": True},
        },
        "certificatesResolvers": _resolvers(ctx),
    }


def entry_points(ctx: RenderContext) -> dict[str, int]:
    """The guide's entry points for the ports the mail server serves, and 80 (HTTP-01 and the
    redirect) and 443 (WKD) always."""
    served = ctx.served_ports
    return {
        name: port
        for name, port in ENTRY_POINTS.items()
        if port in served or name in ("web", "web-secure")
    }


def _entry_point(name: str, port: int) -> dict:
    entry_point: dict = {"address": f":{port}"}
    if name == "web":
        # ACME HTTP-01 requests skip the redirect and reach the routers below (the mail names'
        # challenges go home); the redirect yields to every other router.
        entry_point["allowACMEByPass"] = True
        redirect = {"to": "web-secure", "scheme": "https", "priority": 1}
        entry_point["http"] = {"redirections": {"entryPoint": redirect}}
    if name == "web-secure":
        entry_point["http2"] = {"maxConcurrentStreams": 250}
        # The guide writes `http3: false`, which the static schema rejects: `http3` is an object
        # ({advertisedPort}) whose mere presence turns HTTP/3 on. Off means leaving it out.
        if HTTP3:
            entry_point["http3"] = {}
    return entry_point


def _resolvers(ctx: RenderContext) -> dict:
    email = ctx.host.acme_email
    if not email:
        raise RenderError(
            f"Give {ctx.host} an ACME e-mail: the ACME server registers Traefik's account with it."
        )

    server = {"email": email, "storage": IN_CONTAINER[ACME]}
    if ca_server := _ca_server(ctx.acme):
        server["caServer"] = ca_server
    if ctx.acme.ca_pem:
        # Instead of Lego's LEGO_CA_CERTIFICATES (the same for every resolver): an option of
        # traefik.yml, which the staged check's Traefik loads. Alone, as Mailgate's own client
        # trusts MAILGATE_ACME_CA_FILE alone for the ACME server.
        server["caCertificates"] = [IN_CONTAINER[TRUST]]

    def acme(challenge: dict) -> dict:
        return {"acme": {**server, **challenge}}

    resolvers = {"default": acme({"httpChallenge": {"entryPoint": "web"}})}
    if ctx.host.cloudflare_api_token:
        dns = {
            "provider": "cloudflare",
            # A string: the schema wants durations as strings (the guide's bare 0 fails it).
            "delayBeforeCheck": "0s",
            "resolvers": ["1.1.1.1:53", "8.8.8.8:53"],
        }
        resolvers["cf-dns"] = acme({"dnsChallenge": dns})
    resolvers["alpn"] = acme({"tlsChallenge": {}})
    return resolvers


def _ca_server(acme: AcmeServer) -> str:
    """The ACME server's directory for ``caServer``; empty for Let's Encrypt's, Traefik's
    default."""
    directory = one_line(acme.directory)
    if directory == LETS_ENCRYPT:
        return ""
    try:
        url = urlsplit(directory)
        valid = url.scheme == "https" and bool(url.hostname) and url.port != 0
    except ValueError:  # a malformed [IPv6] host, or a port that is not a number (url.port)
        valid = False
    if not valid or any(char.isspace() for char in directory):
        raise RenderError(
            f"MAILGATE_ACME_DIRECTORY must be the https URL of an ACME directory, not "
            f"{directory!r}: Traefik's certificate resolvers ask it too."
        )
    return directory


def _trust(acme: AcmeServer) -> File | None:
    """The CAs to trust for the ACME server's HTTPS, each certificate re-encoded from what it
    holds, so that nothing else reaches the file; None when the system's CAs are trusted."""
    if not acme.ca_pem:
        return None
    try:
        certificates = x509.load_pem_x509_certificates(acme.ca_pem)
    except ValueError:
        raise RenderError(
            "MAILGATE_ACME_CA_FILE holds no PEM certificate: Traefik cannot trust the ACME "
            "server with it."
        ) from None
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    return File(TRUST, lines(pem.decode().splitlines()), mode=0o644)


# --- dynamic-mailu.yml ---------------------------------------------------------------------------


def dynamic(ctx: RenderContext, home: haproxy.Peer) -> dict:
    mail = haproxy.mail_names(ctx.directory)
    wkd = terminated_names(ctx.directory)
    routes = {
        name: route
        for name, route in TCP_ROUTES.items()
        if ENTRY_POINTS[route[0]] in ctx.served_ports
    }
    return {"http": _http(ctx, home, mail, wkd), "tcp": _tcp(home, mail, routes), "tls": _tls()}


def terminated_names(directory) -> list[str]:
    """The names Traefik terminates TLS for, with certificates from its own resolvers: the
    gateway's web names (WKD, MTA-STS, client setup), which its ``wkd`` router serves."""
    return haproxy.web_names(directory)


def _tls() -> dict:
    """What Traefik terminates itself (WKD) follows Mozilla's intermediate profile; the mail
    ports pass through to the mail server, which holds its own TLS settings."""
    return {
        "options": {
            "default": {
                "minVersion": "VersionTLS12",
                "cipherSuites": tls.INTERMEDIATE_GO_SUITES,
            }
        }
    }


def _http(ctx: RenderContext, home: haproxy.Peer, mail: list[str], wkd: list[str]) -> dict:
    routers = {}
    if mail:
        # Only the mail names' ACME challenges go home (the same names as the passthrough
        # router, so mta-sts.* too, which the guide's rule forgets); the guide's optional
        # plain-HTTP router for the mail host is left out: everything else goes to HTTPS.
        acme_path = "PathPrefix(`/.well-known/acme-challenge/`)"
        routers["mailu-acme-only"] = {
            "entryPoints": ["web"],
            "rule": f"{acme_path} && ({_any('Host', mail)})",
            "service": "mailu-web",
            "priority": 1000,
        }
    if wkd:
        resolver = "cf-dns" if ctx.host.cloudflare_api_token else "default"
        routers["wkd"] = {
            "entryPoints": ["web-secure"],
            "rule": _any("Host", wkd),
            "tls": {"certResolver": resolver},
            "service": "wkd-nginx",
        }
    services = {
        "mailu-web": _http_service(f"http://{_host_port(home.address, 80)}"),
        "wkd-nginx": _http_service(f"http://{_host_port(*WKD_CONTAINER_LISTEN)}"),
    }
    return {"routers": routers, "services": services}


def _tcp(home: haproxy.Peer, mail: list[str], routes: dict[str, tuple[str, bool]]) -> dict:
    routers = {}
    for name, (entry_point, passthrough) in routes.items():
        # The mail names share 443 with WKD, so they are told apart by SNI; the others own a port.
        rule = _any("HostSNI", mail) if entry_point == "web-secure" else "HostSNI(`*`)"
        if rule:
            routers[name] = _tcp_router(name, entry_point, rule, tls=passthrough)
    services = {
        name: _tcp_service(_host_port(home.address, ENTRY_POINTS[entry_point]))
        for name, (entry_point, _) in routes.items()
    }
    return {
        "routers": routers,
        "serversTransports": {PROXY_TRANSPORT: {"proxyProtocol": {"version": 2}}},
        "services": services,
    }


def _tcp_router(name: str, entry_point: str, rule: str, *, tls: bool) -> dict:
    router: dict = {"entryPoints": [entry_point], "rule": rule}
    if tls:
        router["tls"] = {"passthrough": True}
    router["service"] = name
    return router


def _http_service(url: str) -> dict:
    return {"loadBalancer": {"servers": [{"url": url}]}}


def _tcp_service(address: str) -> dict:
    return {
        "loadBalancer": {"serversTransport": PROXY_TRANSPORT, "servers": [{"address": address}]}
    }


def _any(matcher: str, names: list[str]) -> str:
    return " || ".join(f"{matcher}(`{dns_name(name)}`)" for name in names)


def _host_port(address: str, port: int) -> str:
    host = ipaddress.ip_address(address)
    return f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"


# --- docker-compose.yml --------------------------------------------------------------------------


def compose(ctx: RenderContext, *, static_sha256: str) -> dict:
    token = bool(ctx.host.cloudflare_api_token)
    # The project name compose would take from /opt/traefik, stated so that it cannot drift.
    document: dict = {"name": "traefik"}
    if token:
        document["secrets"] = {SECRET_NAME: {"file": _relative(SECRET)}}
    document["services"] = {
        "traefik": _traefik_service(token, static_sha256, trust=bool(ctx.acme.ca_pem)),
        HAPROXY_CONTAINER: {
            "image": HAPROXY_IMAGE,
            "container_name": HAPROXY_CONTAINER,
            "restart": "unless-stopped",
            "network_mode": "host",
            # The image's own user cannot bind port 25 on the host's network: HAProxy starts
            # as root and its configuration drops to that user (haproxy.CONTAINER_UID).
            "user": "root",
            "volumes": [_folder_mount(HAPROXY_CONFIG)],
        },
        WKD_CONTAINER: {
            "image": WKD_CONTAINER_IMAGE,
            "container_name": WKD_CONTAINER,
            "restart": "unless-stopped",
            "network_mode": "host",
            "volumes": [
                f"{_relative(ctx.wkd_root)}:{WKD_CONTAINER_ROOT}:ro",
                f"{_relative(WKD_CONTAINER_CONF_SOURCE)}:{WKD_CONTAINER_CONF}:ro",
            ],
        },
    }
    return document


def _traefik_service(token: bool, static_sha256: str, *, trust: bool) -> dict:
    # On the host's network, not behind published ports: Docker's proxy for IPv6 clients would
    # hand Traefik its bridge address instead of the client's, which the PROXY header would name.
    service: dict = {"image": TRAEFIK_IMAGE, "restart": "unless-stopped", "network_mode": "host"}
    if token:
        secret = f"/run/secrets/{SECRET_NAME}"
        service["secrets"] = [SECRET_NAME]
        service["environment"] = {"CF_DNS_API_TOKEN_FILE": secret, "CF_ZONE_API_TOKEN_FILE": secret}
    service["volumes"] = [
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        f"{_relative(STATIC)}:{IN_CONTAINER[STATIC]}:ro",
        f"{_relative(DYNAMIC_DIR)}:{IN_CONTAINER[DYNAMIC_DIR]}:ro",
        f"{_relative(ACME)}:{IN_CONTAINER[ACME]}",
    ]
    if trust:
        service["volumes"].append(f"{_relative(TRUST_DIR)}:{IN_CONTAINER[TRUST_DIR]}:ro")
    service["labels"] = {"org.mailgate.traefik-static-sha256": static_sha256}
    return service


def _folder_mount(path: str) -> str:
    """The folder of ``path`` mounted whole: files replaced in it are seen afresh."""
    return f"{_relative(_parent(path))}:{_parent(IN_CONTAINER[path])}:ro"


def _parent(path: str) -> str:
    return str(PurePosixPath(path).parent)


def _relative(path: str) -> str:
    """``./x`` for a path under /opt/traefik, as compose resolves it beside its file."""
    relative = PurePosixPath(one_line(path)).relative_to(BASE)
    return f"./{relative}"


# --- checks before anything is activated ---------------------------------------------------------


def validate(documents: dict[str, dict]) -> None:
    """Schemas and cross-references of the rendered YAML, keyed by path; RenderError lists all."""
    found = [
        *jsonschemas.problems("traefik-v3-static", documents[STATIC], STATIC),
        *jsonschemas.problems("traefik-v3-file-provider", documents[DYNAMIC], DYNAMIC),
        *jsonschemas.problems("compose-spec", documents[COMPOSE], COMPOSE),
        *problems(documents[STATIC], documents[DYNAMIC]),
    ]
    if found:
        raise RenderError("Traefik's configuration is not valid:\n- " + "\n- ".join(found))


def problems(static: dict, dynamic: dict) -> list[str]:
    """What Traefik would only report in its log (or silently ignore): routers whose service,
    entry point, certificate resolver or servers transport does not exist, names used by both
    HTTP and TCP, and TLS or HTTP on port 25, where SMTP speaks first."""
    entry_points = static.get("entryPoints") or {}
    resolvers = static.get("certificatesResolvers") or {}
    found = []
    for kind in ("http", "tcp"):
        section = dynamic.get(kind) or {}
        services = section.get("services") or {}
        for name, router in (section.get("routers") or {}).items():
            found += _router_problems(kind, name, router, services, entry_points, resolvers)
        transports = section.get("serversTransports") or {}
        for name, service in services.items():
            found += _transport_problems(kind, name, service, transports)
    return found + _shared_names(dynamic)


def _router_problems(kind, name, router, services, entry_points, resolvers) -> list[str]:
    found = []
    service = router.get("service")
    if not service:
        found.append(f"{kind} router {name!r} names no service.")
    elif not _elsewhere(service) and service not in services:
        found.append(f"{kind} router {name!r} uses {service!r}, which is not a {kind} service.")
    names = router.get("entryPoints") or []
    if not names:
        found.append(f"{kind} router {name!r} names no entry point (it would take them all).")
    for entry_point in names:
        if entry_point not in entry_points:
            found.append(f"{kind} router {name!r} uses the undefined entry point {entry_point!r}.")
        elif _port(entry_points[entry_point]) == 25 and (kind == "http" or "tls" in router):
            found.append(
                f"{kind} router {name!r} is on port 25 ({entry_point!r}): SMTP speaks first, "
                "so only a plain TCP router for HostSNI(`*`) can serve it."
            )
    resolver = (router.get("tls") or {}).get("certResolver")
    if resolver and resolver not in resolvers:
        found.append(
            f"{kind} router {name!r} uses the undefined certificate resolver {resolver!r}."
        )
    return found


def _transport_problems(kind, name, service, transports) -> list[str]:
    transport = (service.get("loadBalancer") or {}).get("serversTransport")
    if transport and not _elsewhere(transport) and transport not in transports:
        return [f"{kind} service {name!r} uses the undefined servers transport {transport!r}."]
    return []


def _shared_names(dynamic: dict) -> list[str]:
    found = []
    for part in ("routers", "services"):
        http = set((dynamic.get("http") or {}).get(part) or {})
        tcp = set((dynamic.get("tcp") or {}).get(part) or {})
        found += [f"{name!r} is both an http and a tcp {part[:-1]}." for name in sorted(http & tcp)]
    return found


def _elsewhere(name: str) -> bool:
    # `name@provider` refers to another provider's object (e.g. noop@internal): not ours to check.
    return "@" in name


def _port(entry_point: dict) -> int | None:
    port = str(entry_point.get("address", "")).rsplit(":", 1)[-1].split("/")[0]
    return int(port) if port.isdigit() else None


# --- shell ---------------------------------------------------------------------------------------


def _staged(path: str) -> str:
    return f'"$STAGE"{shell_quote(path)}'


def _compose_check() -> str:
    # Docker may be installed after the first deployment; until then only the schema check ran.
    return "\n".join(
        [
            "if command -v docker >/dev/null 2>&1; then",
            f"  docker compose -f {_staged(COMPOSE)} config -q",
            "fi",
        ]
    )


def _haproxy_check() -> str:
    # The host's own haproxy when there is one, else the very image the container runs.
    folder = _parent(HAPROXY_CONFIG)
    mount = f"{_staged(folder)}:{shell_quote(_parent(IN_CONTAINER[HAPROXY_CONFIG]) + ':ro')}"
    return "\n".join(
        [
            "if command -v haproxy >/dev/null 2>&1; then",
            f"  haproxy -c -f {_staged(HAPROXY_CONFIG)}",
            "else",
            f"  docker run --rm --network none -v {mount} {shell_quote(HAPROXY_IMAGE)} "
            f"haproxy -c -f {shell_quote(IN_CONTAINER[HAPROXY_CONFIG])}",
            "fi",
        ]
    )


def _traefik_check(documents: dict[str, dict], *, trust: bool) -> str:
    """Traefik itself on the staged dynamic folder (and the staged CAs of the ACME server, which
    its resolvers load), in the image the compose file names, cut off from every network
    (``traefik_check.staged_script``); skipped, as the compose check is, until Docker is
    installed."""
    inside = IN_CONTAINER[DYNAMIC_DIR]
    script = traefik_check.staged_script(documents[STATIC], documents[DYNAMIC], dynamic_dir=inside)
    folders = [DYNAMIC_DIR, *([TRUST_DIR] if trust else [])]
    mounts = " ".join(
        f"-v {_staged(folder)}:{shell_quote(IN_CONTAINER[folder] + ':ro')}" for folder in folders
    )
    return "\n".join(
        [
            "if command -v docker >/dev/null 2>&1; then",
            f"  docker run --rm --network none {mounts} {shell_quote(TRAEFIK_IMAGE)} "
            f"sh -c {_script(script)}",
            "fi",
        ]
    )


def _live_check(documents: dict[str, dict]) -> str:
    """After ``up``: the running Traefik serves the new routers (its file watcher took the new
    dynamic file in, or it restarted on a new traefik.yml); else the transaction rolls back."""
    script = traefik_check.live_script(documents[DYNAMIC])
    return f"docker compose -f {shell_quote(COMPOSE)} exec -T traefik sh -c {_script(script)}"


def _script(script: str) -> str:
    # A whole script, newlines and all, as one word: shell_quote refuses newlines, which no
    # value in it can carry (every name and rule was checked when it was rendered).
    return shlex.quote(script)


# --- activation ----------------------------------------------------------------------------------


def _acme_storage() -> str:
    # Docker would create a missing bind source as a folder, and Traefik refuses an acme.json
    # that others can read: create it empty and private before the container starts.
    acme = shell_quote(ACME)
    return f"test -e {acme} || install -m 0600 /dev/null {acme}\nchmod 0600 {acme}"


def _compose_up() -> str:
    return f"docker compose -f {shell_quote(COMPOSE)} up -d"


def _haproxy_reload() -> str:
    # HAProxy in master-worker mode reloads its file on SIGHUP. A container that `up` has just
    # started has read the new file already; a signal before its handler exists is ignored, as
    # for any PID 1.
    return f"docker kill -s HUP {shell_quote(HAPROXY_CONTAINER)}"
