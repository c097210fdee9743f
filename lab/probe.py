"""Clients that the lab's checks run on a lab host (``python -m lab.probe ...`` inside its
namespaces), each printing one JSON object: what a person's mail program or browser would see.

    certificate HOST PORT CA           the certificate HOST presents (587: after STARTTLS),
                                       checked for that name: issuer, serial, expiry
    dns NAME TYPE                      the answer of the host's resolver
    greeting HOST PORT CA|-            the server's first line (TLS from the start with a CA)
    imap HOST USER SUBJECT CA          IMAPS login (password in LAB_PROBE_PASSWORD), find a message
    https URL CA                       GET with the certificate checked against the lab CA
    login HOST USER CA                 one IMAPS login (password in LAB_PROBE_PASSWORD)
    relay HOST PORT CLAIM...           try to relay through an SMTP server reached directly,
                                       after a PROXY v2 header claiming each CLAIM (``-``: none)
    tls HOST PORT SNI                  which TLS versions and suites the server accepts
    until-login HOST USER CA WAIT NET  IMAPS logins, a new one every TRY seconds, each from
                                       the next address of NET (Dovecot delays logins from
                                       an address that failed before), until one succeeds:
                                       when (the clock's time), after how many
    until-accepted HOST PORT TO WAIT   SMTP to RCPT TO, a new try every TRY seconds, until the
                                       server accepts the recipient: when, after how many

The password comes from the environment, never the command line (any process can read that).
With ``LAB_PROBE_USER`` set, the probe drops to that user before it connects: an unprivileged
program on the lab host (the project's Python lies under /root, which such a user cannot read,
so the probe is started as root and everything it needs is imported first).
"""

import encodings.idna  # noqa: F401 (what socket looks up a str host with, imported before a drop)
import imaplib
import ipaddress
import itertools
import json
import os
import pwd
import smtplib
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

import dns.resolver
import spf


def lookup(name: str, rtype: str) -> dict:
    answer = dns.resolver.resolve(name, rtype, raise_on_no_answer=False, lifetime=5)
    return {"values": sorted(record.to_text() for record in answer)}


def spf_check(address: str, sender: str, helo: str) -> dict:
    """What SPF (RFC 7208) says of mail from ``address`` with envelope ``sender``, asked of the
    lab's DNS as the receiving MX would."""
    result, explanation = spf.check2(i=address, s=sender, h=helo)
    return {"result": result, "explanation": explanation}


def greeting(host: str, port: str, ca: str) -> dict:
    """What a server says first: SMTP's 220 or IMAP's OK, in TLS from the start when ``ca``
    is given (ports 465 and 993)."""
    with socket.create_connection((host, int(port)), timeout=10) as plain:
        if ca == "-":
            return {"line": plain.makefile("rb").readline().decode(errors="replace").strip()}
        context = ssl.create_default_context(cafile=ca)
        with context.wrap_socket(plain, server_hostname=host) as secure:
            return {"line": secure.makefile("rb").readline().decode(errors="replace").strip()}


def certificate(host: str, port: str, ca: str) -> dict:
    """The certificate ``host`` presents on ``port`` (587: after STARTTLS), checked against
    ``ca`` for that name: its issuer, serial (hexadecimal) and expiry."""
    context = ssl.create_default_context(cafile=ca)
    if port == "587":
        with smtplib.SMTP(host, 587, timeout=10) as client:
            client.starttls(context=context)
            seen = client.sock.getpeercert()
    else:
        with (
            socket.create_connection((host, int(port)), timeout=10) as plain,
            context.wrap_socket(plain, server_hostname=host) as secure,
        ):
            seen = secure.getpeercert()
    issuer = dict(item[0] for item in seen["issuer"])
    return {
        "issuer": issuer.get("commonName", str(issuer)),
        "serial": f"{int(seen['serialNumber'], 16):x}",
        "until": seen["notAfter"],
    }


def imap_find(host: str, user: str, subject: str, ca: str, wait: float = 30) -> dict:
    """Log in over IMAPS and wait for a message with ``subject`` in the inbox."""
    context = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + wait
    with imaplib.IMAP4_SSL(host, 993, ssl_context=context, timeout=10) as client:
        client.login(user, os.environ["LAB_PROBE_PASSWORD"])
        certificate = client.sock.getpeercert()
        numbers = []
        while not numbers and time.monotonic() < deadline:
            # The inbox exists once the first message is delivered.
            if client.select("INBOX", readonly=True)[0] == "OK":
                _, found = client.search(None, "SUBJECT", f'"{subject}"')
                numbers = found[0].split()
            if not numbers:
                time.sleep(0.5)
        message = b""
        if numbers:
            _, parts = client.fetch(numbers[-1], "(RFC822)")
            message = parts[0][1]
    return {
        "found": bool(numbers),
        "certificate": dict(item[0] for item in certificate["subject"]),
        "message": message.decode(errors="replace"),
    }


TRY = 0.1  # seconds between two tries of the until- verbs (each on a connection of its own)


def until(attempt, wait: str) -> dict:
    """Start ``attempt`` on a thread of its own every ``TRY`` seconds (a refused login takes
    Dovecot's auth_failure_delay, 2 s, to answer) until one returns true or ``wait`` seconds
    pass; print "ready" first, so the caller knows the tries have begun."""
    print("ready", flush=True)
    succeeded: list[float] = []
    deadline, tries = time.monotonic() + float(wait), 0

    def run():
        if attempt():
            succeeded.append(time.time())

    while not succeeded and time.monotonic() < deadline:
        threading.Thread(target=run, daemon=True).start()
        tries += 1
        time.sleep(TRY)
    return {"at": min(succeeded) if succeeded else None, "tries": tries}


def until_login(host: str, user: str, ca: str, wait: str, network: str) -> dict:
    """Each login from an address of its own: Dovecot's auth penalty (anvil) delays every
    login from an address after a failed one, up to 15 s, which would be measured instead."""
    context = ssl.create_default_context(cafile=ca)
    sources = itertools.cycle(str(address) for address in ipaddress.ip_network(network).hosts())

    def attempt() -> bool:
        try:
            with _FromAddress(next(sources), host, 993, ssl_context=context, timeout=10) as client:
                client.login(user, os.environ["LAB_PROBE_PASSWORD"])
                return True
        except (OSError, imaplib.IMAP4.error):
            return False

    return until(attempt, wait)


class _FromAddress(imaplib.IMAP4_SSL):
    """IMAPS from a chosen source address."""

    def __init__(self, source: str, *arguments, **options):
        self.source = source
        super().__init__(*arguments, **options)

    def _create_socket(self, timeout):
        address = (self.host, self.port)
        plain = socket.create_connection(address, timeout, source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(plain, server_hostname=self.host)


def until_accepted(host: str, port: str, recipient: str, wait: str) -> dict:
    def attempt() -> bool:
        try:
            with socket.create_connection((host, int(port)), timeout=10) as plain:
                smtp = _Smtp(plain, [])
                smtp.say(None)
                smtp.say("EHLO client.outside.example")
                smtp.say("MAIL FROM:<friend@outside.example>")
                accepted = smtp.say(f"RCPT TO:<{recipient}>").startswith("250")
                smtp.say("QUIT")
                return accepted
        except OSError:
            return False

    return until(attempt, wait)


def imap_login(host: str, user: str, ca: str) -> dict:
    context = ssl.create_default_context(cafile=ca)
    try:
        with imaplib.IMAP4_SSL(host, 993, ssl_context=context, timeout=10) as client:
            answer = client.login(user, os.environ["LAB_PROBE_PASSWORD"])
            return {"ok": True, "answer": answer[1][0].decode(errors="replace")}
    except imaplib.IMAP4.error as exc:
        return {"ok": False, "answer": str(exc)}


def https_get(url: str, ca: str, body: str = "") -> dict:
    """GET ``url``, or POST ``body`` (as a mail program posts its autodiscover request)."""
    context = ssl.create_default_context(cafile=ca)
    data = body.encode() if body else None
    headers = {"Content-Type": "text/xml"}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (https only)
    with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
        return {
            "status": response.status,
            "content_type": response.headers.get("Content-Type", ""),
            "body": response.read().hex(),
        }


# PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): signature, version 2 with
# the PROXY command, then TCP over IPv4 or IPv6 and the addresses and ports.
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
RELAY_TARGET = "victim@elsewhere.example"


def proxy_header(claimed: str, server: str, port: int) -> bytes:
    """A v2 header saying the connection came from ``claimed``; its destination is the server
    where the families agree, otherwise the claim's family's unspecified address."""
    source, destination = ipaddress.ip_address(claimed), ipaddress.ip_address(server)
    if destination.version != source.version:
        destination = ipaddress.ip_address("::" if source.version == 6 else "0.0.0.0")  # noqa: S104
    family = 0x11 if source.version == 4 else 0x21
    addresses = source.packed + destination.packed + struct.pack("!HH", 40000, port)
    return (
        PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(addresses)) + addresses
    )


def relay_attempts(host: str, port: str, *claims: str) -> dict:
    return {"attempts": {claim: relay_attempt(host, int(port), claim) for claim in claims}}


def relay_attempt(host: str, port: int, claim: str) -> dict:
    """An attacker who reaches a mail server directly (not through the gateway): an optional
    forged PROXY header, then EHLO and an envelope to an outside address. ``relayed`` is true
    when the server accepted that recipient."""
    try:
        plain = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        return {"connected": False, "relayed": False, "dialogue": [f"connect: {exc}"]}
    dialogue: list[str] = []
    with plain:
        try:
            if claim != "-":
                plain.sendall(proxy_header(claim, host, port))
            smtp = _Smtp(_insecure().wrap_socket(plain) if port == 465 else plain, dialogue)
            smtp.say(None)
            smtp.say("EHLO attacker.example")
            if port == 587 and smtp.say("STARTTLS").startswith("220"):
                smtp = _Smtp(_insecure().wrap_socket(plain), dialogue)
                smtp.say("EHLO attacker.example")
            smtp.say("MAIL FROM:<spammer@attacker.example>")
            relayed = smtp.say(f"RCPT TO:<{RELAY_TARGET}>").startswith("250")
        except (OSError, ssl.SSLError) as exc:
            dialogue.append(f"{type(exc).__name__}: {exc}")
            relayed = False
    return {"connected": True, "relayed": relayed, "dialogue": dialogue}


class _Smtp:
    """Commands and their last reply line, written down in ``dialogue``."""

    def __init__(self, conn, dialogue: list[str]):
        self.conn, self.replies, self.dialogue = conn, conn.makefile("rb"), dialogue

    def say(self, line: str | None) -> str:
        if line is not None:
            self.conn.sendall(f"{line}\r\n".encode())
        while True:
            text = self.replies.readline().decode(errors="replace").rstrip()
            if len(text) < 4 or text[3] != "-":
                break
        self.dialogue.append(f"{line or '(greeting)'} -> {text}")
        return text


def _insecure(context: ssl.SSLContext | None = None) -> ssl.SSLContext:
    context = context or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


# What a scanner tries: each offer is a client that speaks only that (OpenSSL's security level
# 0, so that the client itself allows the old and the anonymous).
TLS_OFFERS = {
    "TLS 1.3": (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3, ""),
    "TLS 1.2 ECDHE AES-GCM": (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_2,
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
    ),
    "TLS 1.2 CBC": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "AES:!AESGCM:!AESCCM"),
    "TLS 1.2 anonymous": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "aNULL"),
    "TLS 1.1": (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, "ALL"),
}


def tls_offers(host: str, port: str, sni: str) -> dict:
    """For each of ``TLS_OFFERS``: what the server agreed to, or why not. SMTP's 25 and 587
    start in plain text and switch with STARTTLS."""
    results = {}
    for name, (lowest, highest, ciphers) in TLS_OFFERS.items():
        context = _insecure()
        context.minimum_version, context.maximum_version = lowest, highest
        if ciphers:
            context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
        try:
            with socket.create_connection((host, int(port)), timeout=10) as plain:
                if port in ("25", "587"):
                    smtp = _Smtp(plain, [])
                    smtp.say(None)
                    smtp.say("EHLO scanner.example")
                    smtp.say("STARTTLS")
                with context.wrap_socket(plain, server_hostname=sni) as secure:
                    results[name] = {
                        "accepted": True,
                        "agreed": [secure.version(), secure.cipher()[0]],
                    }
        except (OSError, ssl.SSLError) as exc:
            results[name] = {"accepted": False, "error": f"{type(exc).__name__}: {exc}"[:160]}
    return results


def become(user: str) -> None:
    """Drop to ``user`` (its group, no others) for good; nothing for an empty name."""
    if user:
        entry = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


def main() -> None:
    verb, *arguments = sys.argv[1:]
    function = {
        "certificate": certificate,
        "dns": lookup,
        "greeting": greeting,
        "imap": imap_find,
        "https": https_get,
        "spf": spf_check,
        "login": imap_login,
        "relay": relay_attempts,
        "tls": tls_offers,
        "until-login": until_login,
        "until-accepted": until_accepted,
    }[verb]
    become(os.environ.get("LAB_PROBE_USER", ""))
    try:
        result = function(*arguments)
    except Exception as exc:  # the check shows what went wrong as its evidence
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
