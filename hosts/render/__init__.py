"""Turn the models into each host's bundle of configuration files.

Every module here is a pure function ``units(ctx) -> list[Unit]`` of a ``RenderContext``: it
returns the units its host gets, none when the host has no such role. ``render_host`` loads the
context once and asks every renderer, then the other apps' contributors (``gateway.bundle``).
Order matters only for activation: Dovecot's sockets exist before Postfix reloads, the tunnel is
up before the egress rules and the proxies that use it, the mail guard's filter is in place
before the services it guards listen.
"""

from collections.abc import Iterable

from gateway.bundle import Bundle, contributions
from gateway.selectors import mail_directory
from hosts.acme import acme_server
from hosts.models import Host
from hosts.render import (
    bridge,
    dovecot,
    egress,
    guard,
    haproxy,
    mailu,
    nginx,
    postfix,
    traefik,
    wireguard,
)
from hosts.render.context import RenderContext, load_context

RENDERERS = (wireguard, egress, guard, dovecot, postfix, bridge, mailu, traefik, haproxy, nginx)


def render(ctx: RenderContext) -> Bundle:
    units = [unit for renderer in RENDERERS for unit in renderer.units(ctx)]
    return Bundle(host=ctx.host.name, units=(*units, *contributions(ctx)))


def render_host(host: Host) -> Bundle:
    return render(load_context(host))


def render_hosts(hosts: Iterable[Host]) -> list[Bundle]:
    """Bundles for several hosts from one snapshot of the mail directory (and of the ACME
    server's settings)."""
    directory, acme = mail_directory(), acme_server()
    return [render(load_context(host, directory=directory, acme=acme)) for host in hosts]
