"""The Web Key Directory: file names as GnuPG computes them, the URLs clients ask, the ``hu/``
tree of the gateway's bundle, and fetching a key from another domain's directory.

The hash: lowercase the local part's ASCII letters only (``Ü`` stays ``Ü``, as in GnuPG's
``ascii_strlwr``), SHA-1 its UTF-8 bytes, encode the digest in z-base-32 (RFC 6189 §5.1.6).
"""

import hashlib
import socket
import urllib.request
from urllib.parse import quote, urlsplit

import idna

from gateway.bundle import File, Unit
from keys.colons import ascii_lower

ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
WELL_KNOWN = "/.well-known/openpgpkey"
MAX_KEY_BYTES = 1 << 20  # a WKD answer larger than this is not a key anyone should import
# GnuPG escapes what is not among its URI characters and also these (http_escape_string).
_URI_SAFE = "@!\"$'()*,/:<>[\\]^{|}"  # plus letters, digits and _.-~, which quote() keeps


def zbase32(data: bytes) -> str:
    """z-base-32, most significant bits first; 160 bits (a SHA-1) give 32 characters."""
    bits, count = int.from_bytes(data, "big"), len(data) * 8
    padding = -count % 5
    bits, count = bits << padding, count + padding
    return "".join(ZBASE32[(bits >> shift) & 31] for shift in range(count - 5, -1, -5))


def local_hash(local_part: str) -> str:
    # bytes.lower() changes ASCII letters only; str.lower() would lowercase Ü and differ from gpg.
    return zbase32(hashlib.sha1(local_part.encode("utf-8").lower()).digest())  # noqa: S324


def split(address: str) -> tuple[str, str]:
    """The local part as written and the domain in its lowercase ASCII (IDNA) form."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} is not a mail address.")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{domain!r} is not a domain name: {exc}") from None
    return local, domain


def address_hash(address: str) -> str:
    """The hash ``gpg-wks-client --print-wkd-hash`` prints for ``address``."""
    local, _ = split(address)
    return local_hash(local)


def urls(address: str) -> tuple[str, str]:
    """The advanced and the direct URL of ``address``'s key. ``l=`` carries the local part
    lowercased as GnuPG 2.2 sends it (the draft says unchanged; servers look up the hash)."""
    local, domain = split(address)
    tail = f"hu/{local_hash(local)}?l={quote(ascii_lower(local), safe=_URI_SAFE)}"
    return (
        f"https://openpgpkey.{domain}{WELL_KNOWN}/{domain}/{tail}",
        f"https://{domain}{WELL_KNOWN}/{tail}",
    )


def tree_path(wkd_root: str, domain: str, local_part: str) -> str:
    """Where a key lies in the advanced layout below the gateway's WKD root; nginx answers the
    direct method from the same folder, so no key is stored twice."""
    return f"{wkd_root.rstrip('/')}{WELL_KNOWN}/{domain}/hu/{local_hash(local_part)}"


# --- the gateway's bundle ------------------------------------------------------------------------


def wkd_units(ctx) -> list[Unit]:
    """The ``hu/`` files of every published key in every enabled domain, for the gateway (a
    bundle contributor, registered in ``KeysConfig.ready``). nginx (``hosts.render.nginx``)
    writes the policy files and serves the tree as it is: nothing to check or reload."""
    if not ctx.host.is_gateway or ctx.wkd_root is None:
        return []
    from keys.selectors import wkd_keys  # keys.models imports this module

    domains = {entry.name for entry in ctx.directory.domains}
    files = [
        File(tree_path(ctx.wkd_root, domain, local), key, mode=0o644)
        for (local, domain), key in wkd_keys(domains).items()
    ]
    return [Unit(name="wkd-keys", files=tuple(files))] if files else []


# --- fetching ------------------------------------------------------------------------------------


def fetch(address: str, *, url: str | None = None, timeout: float = 15) -> bytes:
    """The key another domain publishes for ``address``. Like gpg: the advanced method when
    ``openpgpkey.<domain>`` resolves, else the direct one (``url`` overrides both)."""
    url = url or _lookup_url(address)
    if urlsplit(url).scheme not in {"https", "http"}:
        raise ValueError(f"{url} is not an HTTP(S) URL.")
    request = urllib.request.Request(url, headers={"User-Agent": "Mailgate"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        data = response.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"{url} answered with more than {MAX_KEY_BYTES} bytes.")
    return data


def _lookup_url(address: str) -> str:
    advanced, direct = urls(address)
    try:
        socket.getaddrinfo(urlsplit(advanced).hostname, 443)
    except socket.gaierror:
        return direct
    return advanced
