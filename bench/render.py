"""Render every host's bundle for a large family: 1,000 domains, 10,000 mailboxes and
20,000 aliases, on a gateway, a Postfix + Dovecot home server, a Mailu home server and a relay.

    .venv/bin/python bench/render.py [--domains N] [--repeat N]

Seeds a throwaway SQLite database (so it runs anywhere, and measures the queries too) and prints
the best wall time of each host's render and of all of them together. Goal: under 2 s in all.
"""

import argparse
import shutil
import time

import panel

DATA = panel.setup()

from django.core.management import call_command

from gateway.models import Alias, Domain, Mailbox
from hosts.models import Host, Relay, Tunnel, TunnelPeer
from hosts.render import render_host, render_hosts

HASH = "{BLF-CRYPT}$2b$04$pgh9Q.MzFFKMHJaF8bCa3unoZJnX/hJ6X2TKIDfR2.yaBQRcWQ2vC"


def seed(domains: int) -> None:
    Domain.objects.bulk_create(
        Domain(name=f"family{n}.example", mail_hostname="mail.example.com") for n in range(domains)
    )
    ids = list(Domain.objects.order_by("pk").values_list("pk", flat=True))
    Mailbox.objects.bulk_create(
        Mailbox(domain_id=pk, local_part=f"user{m}", password_hash=HASH, quota_mb=m * 100)
        for pk in ids
        for m in range(10)
    )
    Alias.objects.bulk_create(
        Alias(
            domain_id=pk,
            local_part=f"alias{a}",
            destinations=[
                f"user{a % 10}@family{n}.example",
                f"user{(a + 1) % 10}@family{n}.example",
            ],
            allowed_as_sender=a % 2 == 0,
        )
        for n, pk in enumerate(ids)
        for a in range(20)
    )
    bridge = Relay.objects.create(name="bridge", username="joe@proton.me", password="pass")
    vps = Host.objects.create(
        name="vps",
        is_gateway=True,
        gateway_proxy="haproxy",
        ssh_address="203.0.113.1",
        public_ipv4="203.0.113.1",
        tunnel_address="10.8.0.1",
        fqdn="mail.example.com",
    )
    home = Host.objects.create(
        name="home",
        is_mailserver=True,
        mail_backend="postfix-dovecot",
        ssh_address="192.168.1.2",
        tunnel_address="10.8.0.2",
    )
    nas = Host.objects.create(
        name="nas",
        is_mailserver=True,
        mail_backend="mailu",
        ssh_address="192.168.1.3",
        tunnel_address="10.8.0.3",
    )
    Host.objects.create(
        name="relay",
        is_relay=True,
        ssh_address="192.168.1.4",
        relay=bridge,
        lan_networks=["192.168.1.0/24"],
    )
    tunnel = Tunnel.objects.create(hub=vps)
    TunnelPeer.objects.create(tunnel=tunnel, host=home)
    TunnelPeer.objects.create(tunnel=tunnel, host=nas, routed_subnet="192.168.203.0/24")


def best_of(repeat: int, function) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        timings.append(time.perf_counter() - start)
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    seed(options.domains)
    print(
        f"{Domain.objects.count()} domains, {Mailbox.objects.count()} mailboxes, "
        f"{Alias.objects.count()} aliases"
    )
    hosts = list(Host.objects.order_by("name"))
    for host in hosts:
        seconds, bundle = best_of(options.repeat, lambda host=host: render_host(host))
        size = sum(len(file.content) for file in bundle.files)
        print(f"{host.name:8} {seconds:7.3f} s  {len(bundle.files):5} files  {size / 1e6:6.2f} MB")
    seconds, _ = best_of(options.repeat, lambda: render_hosts(hosts))
    print(f"{'all':8} {seconds:7.3f} s  (every host from one snapshot; goal: under 2 s)")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(DATA)
