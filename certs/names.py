"""Which certificates the setup needs, derived from the models, grouped by the host that
presents them and by where their files are read.

- **The mail server** presents one certificate per mail host name: Postfix and Dovecot pick it
  by the TLS server name (SNI), each from ``/etc/letsencrypt/live/<name>/``, which is where the
  renderers (``hosts.render.context``) already read it.
- **A Mailu mail server's front** (nginx and its Dovecot proxy) presents one certificate for
  every name of Mailu's ``HOSTNAMES`` (``TLS_FLAVOR=cert``: one file for all names), under the
  server's own name, the first of them.
- **The all-HAProxy gateway's nginx** serves WKD, MTA-STS and client setup, with one
  certificate (the gateway's own name) for ``openpgpkey.``, ``mta-sts.``, ``autoconfig.`` and
  ``autodiscover.`` of every domain. The bare domain is left out: it is usually the family's
  own web site, elsewhere.
- **The Traefik gateway** terminates those names itself and gets their certificates with
  Traefik's own ACME resolver: Mailgate issues nothing for it (docs/certificates.md).

A host that names its own certificate file (``Host.tls_certificate_path``) gets none either.
"""

from dataclasses import dataclass

from certs.choices import Purpose
from hosts.choices import GatewayProxy, MailBackend
from hosts.render import haproxy, mailu

# The names the gateway's nginx serves per domain, as HAProxy routes them to it.
GATEWAY_PREFIXES = (haproxy.WKD_PREFIX, haproxy.MTA_STS_PREFIX, *haproxy.CLIENT_SETUP_PREFIXES)


@dataclass(frozen=True)
class Wanted:
    """A certificate the setup needs: on which host, the first name, and all of them."""

    host_id: int
    purpose: str
    name: str
    names: tuple[str, ...]


def wanted(hosts, domains) -> list[Wanted]:
    """Every certificate ``hosts`` present for the enabled ``domains`` (name, mail_hostname)."""
    domains = sorted(domains, key=lambda d: d.name)
    if not domains:
        return []
    result = []
    for host in hosts:
        if host.tls_certificate_path:
            continue
        if host.is_mailserver and host.mail_backend == MailBackend.POSTFIX_DOVECOT:
            result += _mail(host, domains)
        if host.is_mailserver and host.mail_backend == MailBackend.MAILU:
            result.append(_mailu(host, domains))
        if host.is_gateway and host.gateway_proxy == GatewayProxy.HAPROXY:
            result.append(_gateway(host, domains))
    return result


def _mail(host, domains) -> list[Wanted]:
    names = {host.public_name(domains)} | {d.mail_hostname for d in domains}
    return [Wanted(host.pk, Purpose.MAIL, name, (name,)) for name in sorted(names)]


def _mailu(host, domains) -> Wanted:
    own = host.public_name(domains)
    names = mailu.hostnames(own, (d.mail_hostname for d in domains))
    return Wanted(host.pk, Purpose.MAILU, names[0], tuple(names))


def _gateway(host, domains) -> Wanted:
    own = host.public_name(domains)
    names = sorted({prefix + domain.name for domain in domains for prefix in GATEWAY_PREFIXES})
    return Wanted(host.pk, Purpose.GATEWAY, own, (own, *[n for n in names if n != own]))
