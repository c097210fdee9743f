"""Valid infrastructure for tests: a gateway, a home server, a tunnel, SSH keys."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hosts import wireguard
from hosts.models import Host, Relay, Tunnel, TunnelPeer


def ssh_private_key() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def ssh_host_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def build_infrastructure() -> dict:
    relay = Relay.objects.create(name="bridge", username="joe@proton.me", password="bridge-pass")
    vps = Host.objects.create(
        name="vps",
        is_gateway=True,
        gateway_proxy="haproxy",
        ssh_address="198.51.100.1",
        ssh_private_key=ssh_private_key(),
        public_ipv4="198.51.100.1",
        tunnel_address="10.8.0.1",
    )
    home = Host.objects.create(
        name="home",
        is_mailserver=True,
        mail_backend="postfix-dovecot",
        ssh_address="198.51.100.2",
        tunnel_address="10.8.0.2",
        relay=relay,
    )
    spare = Host.objects.create(
        name="spare",
        is_relay=True,
        ssh_address="198.51.100.3",
        tunnel_address="10.8.0.3",
    )
    tunnel = Tunnel.objects.create(hub=vps)
    peer = TunnelPeer.objects.create(tunnel=tunnel, host=home, routed_subnet="192.168.203.0/24")
    return {
        "relay": relay,
        "vps": vps,
        "home": home,
        "spare": spare,
        "tunnel": tunnel,
        "peer": peer,
        "wireguard_key": wireguard.generate_private_key(),
    }
