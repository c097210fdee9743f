"""What the readers found on a host, before any row is written: the mail directory and the
host's settings, each with the place it was read from."""

from dataclasses import dataclass, field

from hosts.adopt.report import Where


@dataclass
class FoundMailbox:
    address: str
    where: Where
    password_hash: str = ""
    display_name: str = ""
    quota_bytes: int = 0
    enabled: bool = True
    # Mailbox.SETTINGS_FIELDS the host holds otherwise than the model's defaults.
    settings: dict[str, object] = field(default_factory=dict)
    devices: list["FoundDevice"] = field(default_factory=list)


@dataclass
class FoundDevice:
    """A device password (a Mailu token): its name and hash, as the host keeps it."""

    name: str
    password_hash: str
    where: Where


@dataclass
class FoundAlias:
    address: str  # "@domain" for a catch-all
    destinations: list[str]
    where: Where
    allowed_as_sender: bool = False


@dataclass
class FoundRelay:
    host: str
    port: int
    where: Where
    username: str = ""
    password: str = ""
    tls_level: str = ""
    rewrite_sender_to: str = ""


@dataclass
class FoundTunnel:
    """The hub's side (``listen_port`` set) or a spoke's (``hub_public_key`` set)."""

    interface: str
    where: Where
    private_key: str
    address: str
    prefix: int
    mtu: int = 0
    listen_port: int = 0
    hub_public_key: str = ""
    keepalive: int = 0
    peers: list[tuple[str, list[str], Where]] = field(default_factory=list)  # key, AllowedIPs


@dataclass
class Found:
    domains: dict[str, Where] = field(default_factory=dict)
    mailboxes: dict[str, FoundMailbox] = field(default_factory=dict)
    aliases: dict[str, FoundAlias] = field(default_factory=dict)
    managers: list[tuple[str, str, Where]] = field(default_factory=list)  # domain, mailbox
    host: dict[str, tuple[object, Where]] = field(default_factory=dict)  # Host field: value
    relay: FoundRelay | None = None
    tunnel: FoundTunnel | None = None
    routed_subnet: tuple[str, Where] | None = None
    # The host's own lookup tables by what they say (domains, mailboxes, aliases, senders):
    # each table's name and its rows as read, for the routing comparison.
    tables: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)
    # The tables in SQL by name (``mysql:/etc/postfix/x.cf``): their connection and query
    # (``hosts.adopt.sql``), which the routing comparison asks key by key.
    sql_tables: dict[str, tuple] = field(default_factory=dict)

    def mailbox(self, address: str, where: Where) -> FoundMailbox:
        """The mailbox of ``address``, found first at ``where`` if it is new."""
        return self.mailboxes.setdefault(address, FoundMailbox(address, where))
