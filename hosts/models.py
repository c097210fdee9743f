"""Hosts of the gateway, the smarthosts they relay through, the WireGuard tunnel between them,
and the history of deployments to them."""

import ipaddress
import posixpath
import secrets
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from gateway import crypto
from gateway.fields import AddressField, DomainNameField, EncryptedTextField, HostField
from gateway.scoping import ScopedQuerySet
from gateway.selectors import DomainEntry
from gateway.validators import (
    reject_control_characters,
    validate_cidr,
    validate_cidr_list,
    validate_port,
    validate_wireguard_key,
)
from hosts import wireguard
from hosts.choices import (
    ApplyChanges,
    DeploymentStatus,
    DeploymentTrigger,
    FileChange,
    GatewayProxy,
    MailBackend,
    RelayKind,
    TlsLevel,
)
from hosts.validators import (
    validate_absolute_path,
    validate_host_key,
    validate_host_name,
    validate_interface,
    validate_pem_certificate,
    validate_ssh_private_key,
    validate_unix_user,
)


def generate_mailu_secret_key() -> str:
    return secrets.token_hex(16)


class Relay(models.Model):
    """A smarthost that outgoing mail is handed to (the Proton Mail Bridge or a provider)."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "name",
        "kind",
        "host",
        "port",
        "username",
        "password",
        "tls_level",
        "tls_certificate",
        "rewrite_sender_to",
    )

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[validate_host_name],
        help_text="A short name for this smarthost, e.g. bridge or provider.",
    )
    kind = models.CharField(
        max_length=20,
        choices=RelayKind,
        default=RelayKind.PROTON_BRIDGE,
        help_text="The Proton Mail Bridge runs beside Postfix and takes mail on 127.0.0.1:1025 "
        "with the credentials its 'info' command shows; any other provider's SMTP server is "
        "'other smarthost'.",
    )
    host = HostField(
        max_length=253,
        default="127.0.0.1",
        help_text="Where the smarthost listens. The Proton Mail Bridge listens on 127.0.0.1 "
        "of the machine it runs on.",
    )
    port = models.PositiveIntegerField(
        default=1025,
        validators=[validate_port],
        help_text="The Bridge's SMTP port is 1025; providers use 587 (STARTTLS) or 465.",
    )
    username = models.CharField(
        max_length=254,
        validators=[reject_control_characters],
        help_text="The SMTP user name (for the Bridge: the address shown by its 'info' command).",
    )
    password = EncryptedTextField(
        blank=True,
        validators=[reject_control_characters],
        help_text="The SMTP password (for the Bridge: the one it generated, not your Proton "
        "password). Stored encrypted and never shown again.",
    )
    tls_level = models.CharField(
        max_length=10,
        choices=TlsLevel,
        default=TlsLevel.ENCRYPT,
        help_text="Postfix smtp_tls_security_level toward the smarthost. The Bridge uses a "
        "self-signed certificate: 'encrypt', or 'secure' once its certificate is trusted below.",
    )
    tls_certificate = models.TextField(
        blank=True,
        validators=[validate_pem_certificate],
        help_text="The smarthost's self-signed certificate in PEM form, to trust it explicitly "
        "(the Bridge exports it from its settings).",
    )
    rewrite_sender_to = AddressField(
        "rewrite senders to",
        max_length=254,
        blank=True,
        help_text="Rewrite every sender to this address (sender_canonical_maps), for a "
        "smarthost that only sends from its own addresses, such as the Proton Bridge.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def next_hop(self) -> str:
        """The relayhost as Postfix writes it and as its SASL password map is keyed."""
        return f"[{self.host}]:{self.port}"


# Mailu's storage on the host (the setup utility's default), and its certs volume there: the
# front sees it as /certs and nothing else of the host (hosts/render/mailu.py mounts it).
MAILU_STORAGE = "/mailu"
MAILU_CERTS = f"{MAILU_STORAGE}/certs"


def mailu_certificate_problem(certificate: str, key: str) -> str | None:
    """Why Mailu's front could not read a host's own certificate and key files, or None."""
    for path in (certificate, key):
        if not path or posixpath.normpath(path) != path or not path.startswith(f"{MAILU_CERTS}/"):
            return (
                f"Mailu's front reads its certificate and key from {MAILU_CERTS} only (its /certs "
                f"volume), so both files must lie there, not {path or '(none given)'}: e.g. "
                f"{MAILU_CERTS}/fullchain.pem and {MAILU_CERTS}/privkey.pem. Or clear both, and "
                "Mailgate gets the certificate itself."
            )
    return None


class Host(models.Model):
    """A machine Mailgate configures over SSH: the VPS gateway, the home mail server, a relay."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "name",
        "is_gateway",
        "is_mailserver",
        "is_relay",
        "ssh_address",
        "ssh_port",
        "ssh_user",
        "ssh_private_key",
        "ssh_host_key",
        "public_ipv4",
        "public_ipv6",
        "tunnel_address",
        "fqdn",
        "tls_certificate_path",
        "tls_key_path",
        "lan_networks",
        "wan_interface",
        "acme_email",
        "cloudflare_api_token",
        "mailu_secret_key",
        "mail_backend",
        "gateway_proxy",
        "relay",
        "apply_changes",
    )

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[validate_host_name],
        help_text="A short name for this machine, e.g. vps or home.",
    )
    is_gateway = models.BooleanField(
        "gateway",
        default=False,
        help_text="The public face: receives mail on port 25 and passes it through the tunnel.",
    )
    is_mailserver = models.BooleanField(
        "mail server", default=False, help_text="Holds the mailboxes (Mailu or Postfix+Dovecot)."
    )
    is_relay = models.BooleanField(
        "relay", default=False, help_text="Runs Postfix that relays through a smarthost."
    )
    ssh_address = HostField(
        "SSH address",
        max_length=253,
        help_text="Name or IP address Mailgate connects to over SSH.",
    )
    ssh_port = models.PositiveIntegerField(
        "SSH port",
        default=22,
        validators=[validate_port],
        help_text="The port sshd listens on; 22 unless you moved it.",
    )
    ssh_user = models.CharField(
        "SSH user",
        max_length=32,
        default="root",
        validators=[validate_unix_user],
        help_text="The account Mailgate logs in as: root, or a user that may write the mail "
        "configuration and reload its services.",
    )
    ssh_private_key = EncryptedTextField(
        "SSH private key",
        blank=True,
        validators=[validate_ssh_private_key],
        help_text="An unencrypted key whose public half is in the user's authorized_keys. "
        "Stored encrypted and never shown again.",
    )
    ssh_host_key = models.CharField(
        "pinned host key",
        max_length=1024,
        blank=True,
        validators=[validate_host_key],
        help_text="The host's SSH key as confirmed by you on first contact; a different key is "
        "refused.",
    )
    public_ipv4 = models.GenericIPAddressField(
        "public IPv4",
        protocol="IPv4",
        null=True,
        blank=True,
        help_text="The VPS's static public address: the MX points here, outgoing mail leaves "
        "from it (SNAT), and its reverse DNS (PTR) must name the mail host, e.g. "
        "mail.family.example.",
    )
    public_ipv6 = models.GenericIPAddressField(
        "public IPv6",
        protocol="IPv6",
        null=True,
        blank=True,
        help_text="The same for IPv6, if the VPS has one; give it a PTR too, or leave it empty.",
    )
    tunnel_address = models.GenericIPAddressField(
        null=True,
        blank=True,
        help_text="This host's address inside the WireGuard tunnel, e.g. 10.8.0.1 on the hub.",
    )
    fqdn = DomainNameField(
        "public host name",
        max_length=253,
        blank=True,
        help_text="The name the host greets other mail servers with (Postfix myhostname, "
        "HELO). Mail that leaves through the gateway must greet with the gateway's PTR name, "
        "e.g. mail.family.example. Empty: the first domain's mail host name.",
    )
    tls_certificate_path = models.CharField(
        "TLS certificate file",
        max_length=255,
        blank=True,
        validators=[validate_absolute_path],
        help_text="Certificate chain that Postfix, Dovecot and nginx present. Empty: "
        "/etc/letsencrypt/live/<public host name>/fullchain.pem, as certbot writes it.",
    )
    tls_key_path = models.CharField(
        "TLS key file",
        max_length=255,
        blank=True,
        validators=[validate_absolute_path],
        help_text="The certificate's private key file. Empty: the certbot path beside it "
        "(privkey.pem).",
    )
    lan_networks = models.JSONField(
        "LAN networks",
        default=list,
        blank=True,
        validators=[validate_cidr_list],
        help_text="Networks whose machines may send through this host without logging in "
        "(Postfix mynetworks), one per line, e.g. 192.168.1.0/24. Loopback is always allowed; "
        "never list a public network, or the host becomes an open relay.",
    )
    wan_interface = models.CharField(
        "internet interface",
        max_length=15,
        default="eth0",
        validators=[validate_interface],
        help_text="The gateway's interface toward the internet, where SMTP egress is "
        "translated to its public address (SNAT).",
    )
    acme_email = AddressField(
        "ACME e-mail",
        max_length=254,
        blank=True,
        help_text="Let's Encrypt account address for the gateway's Traefik certificates.",
    )
    cloudflare_api_token = EncryptedTextField(
        "Cloudflare API token",
        blank=True,
        validators=[reject_control_characters],
        help_text="A token with Zone → DNS → Edit, for DNS-01 certificates through Traefik "
        "(written to a secret file, never into traefik.yml). Stored encrypted.",
    )
    mailu_secret_key = EncryptedTextField(
        "Mailu secret key",
        default=generate_mailu_secret_key,
        validators=[reject_control_characters],
        help_text="Mailu's SECRET_KEY (16 random bytes), generated by Mailgate.",
    )
    mail_backend = models.CharField(
        max_length=20,
        choices=MailBackend,
        blank=True,
        help_text="For a mail server: the mail software Mailgate sets up on it, e.g. Mailu, which "
        "runs in Docker as one Compose stack with its own Postfix, Dovecot and spam filter; or "
        "Postfix with Dovecot installed on the host. Leave empty for other hosts.",
    )
    gateway_proxy = models.CharField(
        max_length=20,
        choices=GatewayProxy,
        blank=True,
        help_text="For a gateway: the proxy that takes the ports the mail server serves on the "
        "gateway's public address and passes each connection on through the tunnel with a PROXY "
        "v2 header, so the mail server sees the client's address. E.g. Traefik + HAProxy in front "
        "of Mailu (Traefik passes TLS through by server name, SNI; HAProxy takes port 25, where "
        "the server speaks first), or HAProxy for every port. Leave empty for other hosts.",
    )
    relay = models.ForeignKey(
        Relay,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hosts",
        help_text="Send outgoing mail through this smarthost instead of delivering it directly.",
    )
    apply_changes = models.CharField(
        "directory changes",
        max_length=20,
        choices=ApplyChanges,
        default=ApplyChanges.AUTOMATICALLY,
        help_text="What a change to domains, mailboxes, aliases, keys or passwords does to this "
        "host: deployed at once, or its plan waits for your approval. A change to a host, relay "
        "or the tunnel always waits for you.",
    )
    infrastructure_changed_at = models.DateTimeField(
        null=True,
        editable=False,
        help_text="When a host, relay or tunnel last changed while the owner had not deployed "
        "it yet: until the owner does, this host's automatic deployments wait for approval.",
    )
    converged_at = models.DateTimeField(
        null=True,
        editable=False,
        help_text="When Mailgate last found that the host has every change up to then: its "
        "bundle was what it last deployed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def public_name(self, domains: Sequence[DomainEntry]) -> str:
        """The name the host greets with and is known by (Postfix myhostname, HELO, its
        certificate): ``fqdn``, else the first enabled domain's mail host name."""
        first_mail_hostname = domains[0].mail_hostname if domains else ""
        return self.fqdn or first_mail_hostname or f"{self.name}.invalid"

    def clean(self):
        errors = {}
        if not (self.is_gateway or self.is_mailserver or self.is_relay):
            errors["is_gateway"] = "Give the host at least one role: gateway, mail server or relay."
        if self.is_mailserver and not self.mail_backend:
            errors["mail_backend"] = "A mail server needs a backend: Mailu or Postfix + Dovecot."
        if not self.is_mailserver and self.mail_backend:
            errors["mail_backend"] = "Only a mail server has a mail backend."
        if self.is_gateway and not self.gateway_proxy:
            errors["gateway_proxy"] = "A gateway needs a proxy: Traefik+HAProxy or HAProxy."
        if not self.is_gateway and self.gateway_proxy:
            errors["gateway_proxy"] = "Only a gateway has a gateway proxy."
        if self.is_gateway and not (self.public_ipv4 or self.public_ipv6):
            errors["public_ipv4"] = "A gateway needs its public address (the MX and egress IP)."
        if self.mail_backend == MailBackend.POSTFIX_DOVECOT and self.lan_networks:
            # Its listeners all read the gateway's PROXY header, where any address can be
            # claimed: no network may relay by its address (hosts/render/postfix.py).
            errors["lan_networks"] = (
                "A Postfix + Dovecot mail server behind the gateway trusts no network: LAN "
                "machines send through 587 with a login, or through a relay host."
            )
        if self.relay_id and not (self.is_mailserver or self.is_relay):
            errors["relay"] = "Only a mail server or relay host sends through a smarthost."
        if (
            self.mail_backend == MailBackend.MAILU
            and self.tls_certificate_path
            and (problem := mailu_certificate_problem(self.tls_certificate_path, self.tls_key_path))
        ):
            errors["tls_certificate_path"] = problem
        if errors:
            raise ValidationError(errors)


class Tunnel(models.Model):
    """A WireGuard hub (the gateway) and its spokes (home servers)."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "interface",
        "hub",
        "listen_port",
        "subnet",
        "mtu",
        "hub_private_key",
    )

    interface = models.CharField(
        max_length=15,
        unique=True,
        default="wg0",
        validators=[validate_interface],
        help_text="The WireGuard interface name on every host, e.g. wg0.",
    )
    hub = models.ForeignKey(
        Host,
        on_delete=models.PROTECT,
        related_name="hub_of",
        limit_choices_to={"is_gateway": True},
        help_text="The gateway every spoke connects to.",
    )
    listen_port = models.PositiveIntegerField(
        default=51820,
        validators=[validate_port],
        help_text="The UDP port the hub listens on (ListenPort); open it in the VPS provider's "
        "firewall. Spokes use it in their Endpoint.",
    )
    subnet = models.CharField(
        max_length=43,
        default="10.8.0.0/24",
        validators=[validate_cidr],
        help_text="The tunnel's own network; every member's tunnel address lies in it.",
    )
    mtu = models.PositiveIntegerField(
        "MTU",
        default=1420,
        validators=[MinValueValidator(1280), MaxValueValidator(9000)],
        help_text="1420 suits most links; lower it (e.g. 1380) behind PPPoE or another tunnel.",
    )
    hub_private_key = EncryptedTextField(
        default=wireguard.generate_private_key,
        validators=[validate_wireguard_key],
        help_text="Generated by Mailgate; paste one only to keep an existing tunnel's key.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["interface"]

    def __str__(self):
        return f"{self.interface} on {self.hub}"

    @property
    def hub_public_key(self) -> str:
        return wireguard.public_key(self.hub_private_key)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The tunnel subnet, or None while it is invalid (its validator says why)."""
        return _network_or_none(self.subnet)

    def clean(self):
        if self.network is None or not self.hub_id:
            return
        if self.hub.tunnel_address is None:
            raise ValidationError({"hub": "Give the hub a tunnel address first."})
        if ipaddress.ip_address(self.hub.tunnel_address) not in self.network:
            raise ValidationError(
                {
                    "subnet": f"The hub's tunnel address {self.hub.tunnel_address} is outside "
                    f"{self.subnet}."
                }
            )


class TunnelPeer(models.Model):
    """A spoke of a tunnel: a home server that reaches the gateway through WireGuard."""

    # What the page and the API change, listed once for its form and its serializer.
    EDITABLE_FIELDS = (
        "tunnel",
        "host",
        "private_key",
        "routed_subnet",
        "keepalive",
        "egress_via_hub",
    )

    tunnel = models.ForeignKey(
        Tunnel,
        on_delete=models.CASCADE,
        related_name="peers",
        help_text="The tunnel whose hub this host connects to.",
    )
    host = models.ForeignKey(
        Host,
        on_delete=models.PROTECT,
        related_name="tunnel_peers",
        help_text="The home server; give it a tunnel address inside the tunnel's subnet first.",
    )
    private_key = EncryptedTextField(
        default=wireguard.generate_private_key,
        validators=[validate_wireguard_key],
        help_text="Generated by Mailgate; paste one only to keep an existing peer's key.",
    )
    routed_subnet = models.CharField(
        max_length=43,
        blank=True,
        validators=[validate_cidr],
        help_text="A network behind this peer that the hub routes to it, e.g. Mailu's "
        "container subnet 192.168.203.0/24.",
    )
    keepalive = models.PositiveIntegerField(
        default=25,
        validators=[MaxValueValidator(65535)],
        help_text="PersistentKeepalive in seconds, so the home router keeps the path open; "
        "0 turns it off.",
    )
    egress_via_hub = models.BooleanField(
        "SMTP egress through the hub",
        default=True,
        help_text="Send outgoing SMTP (tcp/25) through the gateway, so mail leaves from its "
        "public address (policy routing + SNAT).",
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tunnel", "host__name"]
        constraints = [
            models.UniqueConstraint(fields=["tunnel", "host"], name="tunnel_peer_unique_host")
        ]

    def __str__(self):
        return f"{self.host} in {self.tunnel.interface}"

    @property
    def public_key(self) -> str:
        return wireguard.public_key(self.private_key)

    def clean(self):
        if not (self.tunnel_id and self.host_id) or self.tunnel.network is None:
            return
        errors = {}
        if self.host_id == self.tunnel.hub_id:
            errors["host"] = "The hub cannot also be a spoke of its own tunnel."
        elif self.host.tunnel_address is None:
            errors["host"] = "Give this host a tunnel address first."
        elif ipaddress.ip_address(self.host.tunnel_address) not in self.tunnel.network:
            errors["host"] = (
                f"The host's tunnel address {self.host.tunnel_address} is outside "
                f"{self.tunnel.subnet}."
            )
        routed = _network_or_none(self.routed_subnet)
        tunnel_network = self.tunnel.network
        if routed and routed.version == tunnel_network.version and routed.overlaps(tunnel_network):
            errors["routed_subnet"] = "The routed subnet overlaps the tunnel subnet."
        if (
            self.egress_via_hub
            and not self.routed_subnet
            and self.host.mail_backend == MailBackend.MAILU
        ):
            errors["routed_subnet"] = MAILU_WITHOUT_SUBNET
        if errors:
            raise ValidationError(errors)


# Mailu's mail leaves from its containers, forwarded from Mailu's SUBNET: without that subnet
# routed through the tunnel, the egress marks nothing of it (hosts/render/egress.py).
MAILU_WITHOUT_SUBNET = (
    "A Mailu server that sends through the gateway needs its routed subnet: Mailu's SUBNET "
    "(e.g. 192.168.203.0/24), whose containers' mail enters the tunnel and comes back."
)


def _network_or_none(value: str):
    try:
        return ipaddress.ip_network(value) if value else None
    except ValueError:
        return None


class DeploymentQuerySet(ScopedQuerySet):
    def supersede_waiting(self, host: Host) -> int:
        """Retire the host's plans that wait for approval: a newer state replaced them."""
        waiting = self.filter(host=host, status=DeploymentStatus.AWAITING)
        return waiting.update(status=DeploymentStatus.SUPERSEDED)


class Deployment(models.Model):
    """One push of a host's rendered files, with its log and outcome."""

    TRANSITIONS = {
        DeploymentStatus.PENDING: {DeploymentStatus.RUNNING, DeploymentStatus.FAILED},
        DeploymentStatus.RUNNING: {
            DeploymentStatus.SUCCEEDED,
            DeploymentStatus.FAILED,
            DeploymentStatus.ROLLED_BACK,
            DeploymentStatus.AWAITING,
        },
        DeploymentStatus.FAILED: {DeploymentStatus.ROLLED_BACK},
        DeploymentStatus.AWAITING: {DeploymentStatus.PENDING, DeploymentStatus.SUPERSEDED},
    }
    # Not ended yet: a worker will still change its status and log.
    IN_PROGRESS = (DeploymentStatus.PENDING, DeploymentStatus.RUNNING)

    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="deployments")
    status = models.CharField(
        max_length=12, choices=DeploymentStatus, default=DeploymentStatus.PENDING
    )
    trigger = models.CharField(max_length=20, choices=DeploymentTrigger)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    rollback_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rollbacks"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The owner who approved this automatic deployment's plan.",
    )
    destructive = models.JSONField(
        default=list,
        blank=True,
        help_text="What the host holds that the plan takes away (a domain, mailbox, alias or "
        "setting): the deployment goes ahead only once a person has confirmed it.",
    )
    destructive_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person who confirmed the plan's removals.",
    )
    log = models.TextField(blank=True)
    plan_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="The digest of the plan that was shown; a different plan is not deployed.",
    )
    units = models.JSONField(
        default=list,
        blank=True,
        help_text="The bundle's units as deployed (name, paths, checks, activation), so that a "
        "later rollback can replay them.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The per-host lock: the database lets one deployment per host run at a time.
            models.UniqueConstraint(
                fields=["host"],
                condition=models.Q(status="running"),
                name="deployment_one_running_per_host",
            )
        ]

    def __str__(self):
        return f"deployment #{self.pk} to {self.host}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def in_progress(self) -> bool:
        """Pending or running: its outcome is not known yet."""
        return self.status in self.IN_PROGRESS

    @property
    def by_the_owner(self) -> bool:
        """The owner started or approved it: it may carry infrastructure changes."""
        return self.trigger != DeploymentTrigger.AUTO or self.approved_by_id is not None

    @property
    def unconfirmed_removals(self) -> bool:
        """Its plan takes away what the host holds, and no one has confirmed that yet."""
        return bool(self.destructive) and self.destructive_confirmed_by_id is None

    def must_wait(self) -> bool:
        """An automatic deployment waits for the owner's approval when its host asks for it or
        an infrastructure change has not been deployed by the owner yet; read afresh after
        rendering, so that a change the render saw cannot slip past (docs/architecture.md)."""
        if self.by_the_owner:
            return False
        mode, changed = Host.objects.values_list("apply_changes", "infrastructure_changed_at").get(
            pk=self.host_id
        )
        return mode == ApplyChanges.APPROVAL or changed is not None

    def transition(self, to: DeploymentStatus, **fields) -> bool:
        """Move to a new status if the current one allows it; a concurrent change wins."""
        sources = [src for src, targets in self.TRANSITIONS.items() if to in targets]
        updated = Deployment.objects.filter(pk=self.pk, status__in=sources).update(
            status=to, **fields
        )
        if updated:
            self.refresh_from_db(fields=["status", *fields])
        return bool(updated)


class DeploymentFile(models.Model):
    """One file of a deployment: where it went and its checksums before and after."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, validators=[reject_control_characters])
    mode = models.PositiveIntegerField(default=0o644)
    owner = models.CharField(max_length=65, default="root:root")
    before_sha256 = models.CharField(max_length=64, blank=True)
    after_sha256 = models.CharField(max_length=64, blank=True)
    change = models.CharField(max_length=10, choices=FileChange, default=FileChange.UNCHANGED)
    diff = models.TextField(blank=True, help_text="Unified diff with secrets masked.")
    unit = models.CharField(max_length=63, blank=True)
    secret = models.BooleanField(default=False)
    content = models.BinaryField(
        blank=True, help_text="The bytes deployed (encrypted when secret), for rollbacks."
    )

    class Meta:
        ordering = ["deployment", "path"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "path"], name="deployment_file_unique")
        ]

    def __str__(self):
        return self.path

    def set_content(self, content: bytes, *, secret: bool) -> None:
        """Keep the deployed bytes for rollbacks; a secret file's bytes only encrypted."""
        self.secret = secret
        self.content = crypto.fernet().encrypt(content) if secret else content

    def get_content(self) -> bytes:
        content = bytes(self.content)
        return crypto.fernet().decrypt(content) if self.secret else content
