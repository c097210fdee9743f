"""How a mail program finds a mailbox's servers (docs/mailbox-features.md, Client set-up), built as
data and serialized: Thunderbird's autoconfig (``config-v1.1.xml``), Outlook's autodiscover answer
(POX) and an Apple configuration profile (``.mobileconfig``). Both backends serve IMAP on 993 and
submission on 465 (implicit TLS) and 587 (STARTTLS) behind the gateway, at each domain's mail host
name. No password is ever in them: the person types the mailbox's password or a device password.

Formats: Thunderbird's autoconfig (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat),
Microsoft's POX autodiscover response schema (2006a), Apple's Configuration Profile Reference
(``com.apple.mail.managed``)."""

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

IMAPS_PORT, SUBMISSIONS_PORT, SUBMISSION_PORT = 993, 465, 587
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# Where a served file has the address asked for: Thunderbird replaces it itself, the gateway's
# nginx in Outlook's answer (hosts/render/nginx.py).
ADDRESS_PLACEHOLDER = "%EMAILADDRESS%"
# Profiles of one mailbox keep one identity, so installing a new one replaces the old.
PROFILE_NAMESPACE = uuid.UUID("8f6a1c1e-5d0b-4f43-9a3e-6d1f0c2b7a90")


@dataclass(frozen=True)
class Account:
    """What a mail program needs: the address (also the login), a name, the servers' name."""

    address: str
    display_name: str
    mail_hostname: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @classmethod
    def of(cls, mailbox) -> "Account":
        return cls(mailbox.address, mailbox.display_name, mailbox.domain.mail_hostname)


def autoconfig(*, domain: str, mail_hostname: str) -> bytes:
    """Thunderbird's ``config-v1.1.xml``; ``%EMAILADDRESS%`` lets one file serve the domain."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    for tag, text in (("domain", domain), ("displayName", domain), ("displayShortName", domain)):
        ET.SubElement(provider, tag).text = text
    servers = (
        ("incomingServer", "imap", IMAPS_PORT, "SSL"),
        ("outgoingServer", "smtp", SUBMISSIONS_PORT, "SSL"),
        ("outgoingServer", "smtp", SUBMISSION_PORT, "STARTTLS"),
    )
    for tag, kind, port, socket in servers:
        server = ET.SubElement(provider, tag, type=kind)
        for name, text in (
            ("hostname", mail_hostname),
            ("port", str(port)),
            ("socketType", socket),
            ("authentication", "password-cleartext"),
            ("username", ADDRESS_PLACEHOLDER),
        ):
            ET.SubElement(server, name).text = text
    return _xml(root)


def autodiscover(account: Account) -> bytes:
    """Outlook's answer to an autodiscover request for ``account.address``."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    entry = ET.SubElement(response, "Account")
    ET.SubElement(entry, "AccountType").text = "email"
    ET.SubElement(entry, "Action").text = "settings"
    for kind, port in (("IMAP", IMAPS_PORT), ("SMTP", SUBMISSIONS_PORT)):
        protocol = ET.SubElement(entry, "Protocol")
        for name, text in (
            ("Type", kind),
            ("Server", account.mail_hostname),
            ("Port", str(port)),
            ("LoginName", account.address),
            ("DomainRequired", "off"),
            ("SPA", "off"),
            ("SSL", "on"),
            ("AuthRequired", "on"),
        ):
            ET.SubElement(protocol, name).text = text
    return _xml(root)


def mobileconfig(account: Account) -> bytes:
    """An Apple configuration profile with one IMAP account (unsigned: iOS says so, and asks)."""
    identifier = f"mailgate.{account.domain}.{account.address}"
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.mail",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"{identifier}.mail")).upper(),
        "PayloadDisplayName": account.address,
        "EmailAccountDescription": account.address,
        "EmailAccountName": account.display_name or account.address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": account.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": account.mail_hostname,
        "IncomingMailServerPortNumber": IMAPS_PORT,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": account.address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": account.mail_hostname,
        "OutgoingMailServerPortNumber": SUBMISSIONS_PORT,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": account.address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadContent": [mail],
        "PayloadDisplayName": f"Mail: {account.address}",
        "PayloadIdentifier": identifier,
        "PayloadType": "Configuration",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, identifier)).upper(),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
