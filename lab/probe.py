"""Clients that the lab's checks run on a lab host (``python -m lab.probe ...`` inside its
namespaces), each printing one JSON object: what a person's mail program or browser would see.

    dns NAME TYPE                      the answer of the host's resolver
    greeting HOST PORT CA|-            the server's first line (TLS from the start with a CA)
    imap HOST USER SUBJECT CA          IMAPS login (password in LAB_PROBE_PASSWORD), find a message
    https URL CA                       GET with the certificate checked against the lab CA

The password comes from the environment, never the command line (any process can read that).
"""

import imaplib
import json
import os
import socket
import ssl
import sys
import time
import urllib.request

import dns.resolver


def lookup(name: str, rtype: str) -> dict:
    answer = dns.resolver.resolve(name, rtype, raise_on_no_answer=False, lifetime=5)
    return {"values": sorted(record.to_text() for record in answer)}


def greeting(host: str, port: str, ca: str) -> dict:
    """What a server says first: SMTP's 220 or IMAP's OK, in TLS from the start when ``ca``
    is given (ports 465 and 993)."""
    with socket.create_connection((host, int(port)), timeout=10) as plain:
        if ca == "-":
            return {"line": plain.makefile("rb").readline().decode(errors="replace").strip()}
        context = ssl.create_default_context(cafile=ca)
        with context.wrap_socket(plain, server_hostname=host) as secure:
            return {"line": secure.makefile("rb").readline().decode(errors="replace").strip()}


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


def https_get(url: str, ca: str) -> dict:
    context = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310
        return {
            "status": response.status,
            "content_type": response.headers.get("Content-Type", ""),
            "body": response.read().hex(),
        }


def main() -> None:
    verb, *arguments = sys.argv[1:]
    function = {"dns": lookup, "greeting": greeting, "imap": imap_find, "https": https_get}[verb]
    try:
        result = function(*arguments)
    except Exception as exc:  # the check shows what went wrong as its evidence
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
