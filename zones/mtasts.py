"""MTA-STS (RFC 8461): the policy file the gateway serves at
``https://mta-sts.<domain>/.well-known/mta-sts.txt``, and the id its ``_mta-sts`` TXT record
carries.

The id is derived from the policy's bytes, so it changes exactly when the policy does (senders
refetch the policy when the id changes) and needs no stored counter.

The policy files are added to the gateway's bundle (``units``, registered with
``gateway.bundle.contributor``) inside the gateway's WKD document root, in a folder the WKD
locations never serve; the gateway's nginx answers ``mta-sts.<domain>`` from it (see
``hosts.render.nginx``). The file cannot say that Mailgate manages it: RFC 8461 allows only
``key: value`` lines whose values hold no spaces.
"""

import hashlib

from gateway.bundle import File, Unit
from gateway.writers import dns_name, one_line
from hosts.render import nginx

LINE_END = "\r\n"  # RFC 8461 §3.2: CRLF-separated key/value pairs


def policy(settings, mail_hostname: str) -> bytes:
    """The policy of a domain whose MX is ``mail_hostname``, from its ``ZoneSettings``."""
    lines = [
        "version: STSv1",
        f"mode: {one_line(settings.mta_sts_mode)}",
        f"mx: {dns_name(one_line(mail_hostname).rstrip('.').lower())}",
        f"max_age: {int(settings.mta_sts_max_age)}",
    ]
    return (LINE_END.join(lines) + LINE_END).encode()


def policy_id(policy_bytes: bytes) -> str:
    """1 to 32 letters and digits (RFC 8461 §3.1)."""
    return hashlib.sha256(policy_bytes).hexdigest()[:32]


def units(ctx) -> list[Unit]:
    """The gateway's MTA-STS policy files, one per mail domain."""
    if not ctx.host.is_gateway or ctx.wkd_root is None or not ctx.directory.domains:
        return []
    from zones.selectors import settings_by_domain_name

    names = [entry.name for entry in ctx.directory.domains]
    settings = settings_by_domain_name(names)
    files = tuple(
        File(
            nginx.mta_sts_policy_path(ctx.wkd_root, dns_name(entry.name)),
            policy(settings[entry.name], entry.mail_hostname),
        )
        for entry in ctx.directory.domains
    )
    return [Unit(name="mta-sts", files=files)]
