"""The lab's end-to-end checks: real clients in ``internet`` (and on the relay host) talk to
what Mailgate deployed, and each check keeps the evidence it judged by (the SMTP replies, the
line Postfix logged, what the outside MX and the smarthost received, what WKD served).

Each check is a function of a ``Run`` returning a ``Result``; ``run_all`` runs them in order,
since the outbound check reads the mail that the submission check sent.

On a Mailu home server the same checks run against Mailu's own programs (``lab.mailu``): the
front (nginx for 25, its Dovecot proxy for 465, 587 and 993) takes the gateway's PROXY v2
header and hands the client's address on (XCLIENT to Postfix, the proxy's forwarded address
to Dovecot), so the evidence is read from the containers' logs as well as the host's syslog.
Where Mailu differs by design, the check says so: one certificate for every mail host name,
no mail server on the host itself (no local mail), and no filter in front of the published
ports (``check_direct_attack``).
"""

import json
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from certs.models import Certificate
from certs.names import GATEWAY_PREFIXES
from gateway.models import Mailbox
from gateway.selectors import mail_directory
from hosts.render import traefik
from keys import wkd
from keys.models import OpenPGPKey
from lab import docker
from lab.world import (
    DOMAIN,
    FRIENDS,
    FRIENDS_MAIL_HOST,
    HOME_ADDRESS,
    HOME_WAN,
    HUB_ADDRESS,
    INTERNET_VPS_SIDE,
    MAIL_HOST,
    NAMES,
    OUTSIDE,
    SMARTHOST_USER,
    TUNNEL_INTERFACE,
    VPS_PUBLIC,
    Lab,
    probe,
)

WKS_CLIENT = "/usr/lib/gnupg/gpg-wks-client"
HANDSHAKE_RECENT = 180  # seconds: WireGuard renews a session's handshake every two minutes
WAIT = 30  # seconds a check waits for mail to arrive


@dataclass(frozen=True)
class Result:
    """One line of the checklist: what was checked, whether it held, and what showed it."""

    name: str
    ok: bool
    evidence: str


@dataclass
class Run:
    """One run of the checks: the lab, a token that marks this run's messages, and the
    subjects that later checks look for."""

    lab: Lab
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    subjects: dict[str, str] = field(default_factory=dict)

    @property
    def alice(self) -> str:
        return f"alice@{DOMAIN}"

    def password(self, local: str) -> str:
        return self.lab.made["passwords"][local]

    def subject(self, purpose: str) -> str:
        return self.subjects.setdefault(purpose, f"lab {purpose} {self.token}")

    def swaks(self, role: str, *arguments: str, password: str = "") -> str:
        """An SMTP dialogue from a lab host. swaks prompts for the password on its input,
        the one way that takes every password: given as an option (on the command line or as
        SWAKS_OPT_auth_password), one that begins with "-" is read as another option."""
        command = shlex.join(["swaks", "--timeout", "20", "--hide-informational", *arguments])
        result = self.lab.hosts[role].run(
            command, timeout=60, stdin=f"{password}\n" if password else None
        )
        return result.stdout + result.stderr

    def submit(self, port: int, *arguments: str, login: str = "alice") -> str:
        tls = ("--tls-on-connect",) if port == 465 else ("--tls",)
        return self.swaks(
            "internet",
            "--server",
            VPS_PUBLIC,
            "--port",
            str(port),
            *tls,
            "--auth",
            "PLAIN",
            "--auth-user",
            f"{login}@{DOMAIN}",
            *arguments,
            password=self.password(login),
        )

    def inbox(self, local: str, subject: str, *, domain: str = DOMAIN, host: str = MAIL_HOST):
        """What a mail program in ``internet`` finds over IMAPS through the gateway: the
        message with ``subject`` in the mailbox's inbox (its certificate checked by name)."""
        return probe(
            self.lab.hosts["internet"],
            "imap",
            host,
            f"{local}@{domain}",
            subject,
            str(self.lab.folder / "ca.pem"),
            password=self.password(local),
        )

    def received(self, spool: str, subject: str) -> dict | None:
        """The message with ``subject`` that a stand-in SMTP server kept, waiting for it."""
        folder = self.lab.spool / spool
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for path in sorted(folder.glob("*.json")):
                record = json.loads(path.read_text())
                if f"Subject: {subject}" in record["message"]:
                    return record
            time.sleep(0.5)
        return None


def mail_log(run: Run, role: str) -> str:
    """What a lab host's mail programs logged: its syslog, and on a Mailu home server what its
    containers wrote (``docker compose logs``: Mailu's programs log to their output)."""
    host = run.lab.hosts[role]
    return "".join([host.log(), *docker.container_logs(host.root / "private").values()])


def _mail_trail(run: Run, role: str) -> str:
    """Where mail is stuck on a lab host: its queue and its latest Postfix log lines."""
    host = run.lab.hosts[role]
    queue = "docker compose exec -T smtp " if role == "home" and run.lab.mailu else ""
    listed = host.run(f"cd /opt/mailu 2>/dev/null; {queue}postqueue -p", timeout=20)
    log = [line for line in mail_log(run, role).splitlines() if "postfix/" in line][-15:]
    return "\n".join([listed.stdout.strip(), *log])


def _lines(output: str, *needles: str) -> str:
    """The lines of a dialogue that show its outcome."""
    return "\n".join(line for line in output.splitlines() if any(n in line for n in needles))


def check_inbound(run: Run) -> Result:
    subject = run.subject("inbound")

    def send() -> str:
        return run.swaks(
            "internet",
            *("--server", VPS_PUBLIC, "--port", "25", "--helo", f"client.{OUTSIDE}"),
            *("--from", f"visitor@{OUTSIDE}", "--to", run.alice, "--header", f"Subject: {subject}"),
        )

    # A temporary failure (4xx) is tried again, as a sending MTA does: Mailu's Postfix answers
    # 451 until its rspamd (a milter) has loaded, some 20 s after Mailu's admin is up.
    output, deadline = send(), time.monotonic() + WAIT
    while "queued as" not in output and "<** 4" in output and time.monotonic() < deadline:
        time.sleep(2)
        output = send()
    accepted = "queued as" in output
    # Postfix names the client when it connects, or, behind Mailu's front, once the front has
    # passed the client's address (and its name) on with XCLIENT.
    needle = ": client=" if run.lab.mailu else "connect from unknown["
    logged = ""
    deadline = time.monotonic() + WAIT
    while not logged and time.monotonic() < deadline:
        found = _lines(mail_log(run, "home"), f"[{INTERNET_VPS_SIDE}]")
        logged = _lines(found, needle)
        time.sleep(0.2)
    imap = run.inbox("alice", subject)
    received = _lines(imap.get("message", ""), f"[{INTERNET_VPS_SIDE}]")
    evidence = [
        f"internet {INTERNET_VPS_SIDE} -> {VPS_PUBLIC}:25: {_lines(output, 'queued as') or output}",
        f"Postfix on home logged: {logged.splitlines()[0] if logged else 'nothing'}",
        f"IMAPS {MAIL_HOST}:993 (via the gateway, certificate checked against ca.pem): "
        + ("message found" if imap.get("found") else f"not found {imap.get('error', '')}"),
        f"its Received header: {received.strip()}",
    ]
    ok = accepted and bool(logged) and bool(imap.get("found")) and bool(received)
    if not ok:
        evidence.append(f"home's queue and log say:\n{_mail_trail(run, 'home')}")
    return Result(
        "Inbound: internet -> vps:25 -> tunnel -> Postfix on home, PROXY v2, IMAPS",
        ok,
        "\n".join(evidence),
    )


def check_auth_after_tls(run: Run) -> Result:
    plain = run.swaks("internet", "--server", VPS_PUBLIC, "--port", "587", "--quit-after", "EHLO")
    offered = _lines(plain, "250-AUTH", "250 AUTH")
    starttls = "STARTTLS" in plain
    login = run.submit(587, "--quit-after", "AUTH")
    ok = not offered and starttls and "235 " in login
    evidence = (
        f"587 without TLS offers STARTTLS: {starttls}; offers AUTH: {bool(offered)}\n"
        f"587 after STARTTLS: {_lines(login, '235 ', '535 ') or login}"
    )
    return Result("Submission 587: AUTH only after STARTTLS, then succeeds", ok, evidence)


def check_implicit_tls(run: Run) -> Result:
    login = run.submit(465, "--quit-after", "AUTH")
    return Result(
        "Submission 465 (implicit TLS): AUTH succeeds",
        "235 " in login,
        _lines(login, "235 ", "535 ") or login,
    )


def check_spoofed_sender(run: Run) -> Result:
    output = run.submit(587, "--from", f"carol@{DOMAIN}", "--to", f"friend@{OUTSIDE}")
    return Result(
        "Submission: a spoofed sender is rejected (553 5.7.1)",
        "553 5.7.1" in output,
        f"alice sending as carol: {_lines(output, '553', 'queued as') or output}",
    )


def check_alias_sender(run: Run) -> Result:
    subject = run.subject("outbound")
    output = run.submit(
        587,
        *("--from", f"team@{DOMAIN}", "--to", f"friend@{OUTSIDE}"),
        *("--header", f"Subject: {subject}"),
    )
    return Result(
        "Submission: an alias marked as a sender is accepted",
        "queued as" in output,
        f"alice sending as team@: {_lines(output, 'queued as', '553') or output}",
    )


def check_open_relay(run: Run) -> Result:
    output = run.swaks(
        "internet",
        *("--server", VPS_PUBLIC, "--port", "25", "--helo", f"client.{OUTSIDE}"),
        *("--from", f"visitor@{OUTSIDE}", "--to", "victim@elsewhere.example"),
    )
    refused = "Relay access denied" in output
    return Result(
        "Open relay closed: no relaying for a client that has not logged in",
        refused and "queued as" not in output,
        _lines(output, "Relay access", "queued as") or output,
    )


# What an attacker's forged PROXY header claims: no header, loopback, a LAN, the tunnel's two
# ends, the gateway's public address.
CLAIMS = ("-", "127.0.0.1", "::1", "192.168.1.5", HUB_ADDRESS, HOME_ADDRESS, VPS_PUBLIC)
SMTP_PORTS = ("25", "465", "587")


def check_direct_attack(run: Run) -> Result:
    """Every way to the mail server's PROXY ports but through the gateway's proxies is closed:
    from the internet, at the mail server's own address, at its tunnel address routed through
    that address (as a machine on its LAN could) and routed through the gateway (as another
    spoke or a container on the gateway could); from the gateway, for an unprivileged program,
    at the tunnel address with a header of its own and at the gateway's own public ports, where
    the proxy would name loopback for it. Each try sends no header or a header claiming one of
    our own addresses, and none may relay.

    Mailu has no mail guard: Docker forwards its published ports for the tunnel address from
    wherever the packet came, so the path routed through its LAN address connects. What holds
    there is that Mailu's front believes a PROXY header from REAL_IP_FROM only, so no forged
    header relays; the gateway's proxy guard keeps that address to the proxies."""
    internet, vps = run.lab.hosts["internet"], run.lab.hosts["vps"]
    ports = (*SMTP_PORTS, "993")
    evidence, ok = [], True

    def attempt(host, label: str, target: str, port: str, claims, *, may_connect=False, user=""):
        nonlocal ok
        tried = probe(host, "relay", target, port, *claims, user=user).get("attempts", {})
        reached = [claim for claim, seen in tried.items() if seen["connected"]]
        relayed = [claim for claim, seen in tried.items() if seen["relayed"]]
        ok = ok and len(tried) == len(claims) and (may_connect or not reached) and not relayed
        evidence.append(
            f"{label}:{port}: connected: {reached or 'none'}; relayed for {relayed or 'none'}"
        )

    for port in ports:
        attempt(internet, f"internet -> {HOME_WAN}", HOME_WAN, port, CLAIMS)
    for via in (HOME_WAN, VPS_PUBLIC):
        internet.run(f"ip route replace {HOME_ADDRESS}/32 via {via}", timeout=10)
        try:
            for port in ports:
                label = f"internet -> {HOME_ADDRESS} via {via}"
                mailu_lan = run.lab.mailu and via == HOME_WAN
                attempt(internet, label, HOME_ADDRESS, port, CLAIMS, may_connect=mailu_lan)
        finally:
            internet.run(f"ip route del {HOME_ADDRESS}/32", timeout=10)
    for port in SMTP_PORTS:
        label = f"vps (nobody) -> {HOME_ADDRESS}"
        attempt(vps, label, HOME_ADDRESS, port, CLAIMS, user="nobody")
    for target in ("127.0.0.1", "::1", VPS_PUBLIC):
        label = f"vps (nobody) -> the proxy at {target}"
        attempt(vps, label, target, "25", ("-",), user="nobody")
    return Result(
        "Direct attack: no forged PROXY header relays mail, from anywhere",
        ok,
        "\n".join(evidence),
    )


# Mozilla's intermediate profile where TLS is required; port 25 is opportunistic (RFC 7435) and
# only refuses the anonymous suites.
OUTDATED = {"TLS 1.2 CBC", "TLS 1.2 anonymous", "TLS 1.1"}
TLS_ENDPOINTS = {
    "25": (MAIL_HOST, {"TLS 1.2 anonymous"}),
    "465": (MAIL_HOST, OUTDATED),
    "587": (MAIL_HOST, OUTDATED),
    "993": (MAIL_HOST, OUTDATED),
    "443": (f"openpgpkey.{DOMAIN}", OUTDATED),
}
TLS_REQUIRED = {"TLS 1.3", "TLS 1.2 ECDHE AES-GCM"}


def check_tls(run: Run) -> Result:
    evidence, ok = [], True
    for port, (name, refused) in TLS_ENDPOINTS.items():
        offers = probe(run.lab.hosts["internet"], "tls", VPS_PUBLIC, port, name)
        accepted = {offer for offer, seen in offers.items() if seen.get("accepted")}
        ok = ok and accepted >= TLS_REQUIRED and not (accepted & refused)
        agreed = "; ".join(f"{o}: {' '.join(offers[o]['agreed'])}" for o in sorted(accepted))
        evidence.append(f"{port} ({name}) accepts {agreed or 'nothing'}; refuses {sorted(refused)}")
    return Result(
        "TLS: Mozilla intermediate on 465, 587, 993 and 443; no anonymous suite on 25",
        ok,
        "\n".join(evidence),
    )


def check_second_name(run: Run) -> Result:
    """A second domain on a mail host name of its own: mail for it arrives, and 465 and 993
    under that name present its own certificate (checked by name against the lab's trust file)."""
    subject = run.subject("friends")
    bob = f"bob@{FRIENDS}"
    output = run.swaks(
        "internet",
        *("--server", FRIENDS_MAIL_HOST, "--port", "25", "--helo", f"client.{OUTSIDE}"),
        *("--from", f"visitor@{OUTSIDE}", "--to", bob, "--header", f"Subject: {subject}"),
    )
    internet, ca = run.lab.hosts["internet"], str(run.lab.folder / "ca.pem")
    greeting = probe(internet, "greeting", FRIENDS_MAIL_HOST, "465", ca)
    imap = run.inbox("bob", subject, domain=FRIENDS, host=FRIENDS_MAIL_HOST)
    named = imap.get("certificate", {}).get("commonName", "")
    # Mailu's front presents one certificate naming every host of HOSTNAMES, the first as its
    # subject; the client checked the second name against it all the same.
    expected = MAIL_HOST if run.lab.mailu else FRIENDS_MAIL_HOST
    ok = (
        "queued as" in output
        and greeting.get("line", "").startswith("220 ")
        and bool(imap.get("found"))
        and named == expected
    )
    evidence = [
        f"internet -> {FRIENDS_MAIL_HOST}:25 for {bob}: {_lines(output, 'queued as') or output}",
        f"{FRIENDS_MAIL_HOST}:465, certificate checked for that name: "
        f"{greeting.get('line') or greeting.get('error')}",
        f"{FRIENDS_MAIL_HOST}:993 presents CN={named or '?'}: "
        + ("message found" if imap.get("found") else f"not found {imap.get('error', '')}"),
    ]
    return Result(
        f"Second mail host name: {FRIENDS} on {FRIENDS_MAIL_HOST}, its own certificate (SNI)",
        ok,
        "\n".join(evidence),
    )


def check_local_mail(run: Run) -> Result:
    """Mail made on the mail server for root (cron's) reaches a person: the postmaster of the
    host's domain, alice here, read over IMAPS through the gateway."""
    subject = run.subject("local")
    message = shlex.quote(f"Subject: {subject}\n\nfrom cron\n")
    sent = run.lab.hosts["home"].run(f"printf %s {message} | sendmail root", timeout=30)
    imap = run.inbox("alice", subject)
    found = bool(imap.get("found"))
    evidence = [
        f"sendmail root on home: exit {sent.returncode} {sent.stderr.strip()}",
        f"{run.alice} over IMAPS: "
        + ("message found" if found else f"not found {imap.get('error', '')}"),
    ]
    if not found:
        evidence.append(f"home's queue and log say:\n{_mail_trail(run, 'home')}")
    return Result(
        "Local mail: root on the mail server reaches the postmaster's mailbox",
        sent.returncode == 0 and found,
        "\n".join(evidence),
    )


def check_outbound(run: Run) -> Result:
    record = run.received("mx", run.subject("outbound"))
    if record is None:
        return Result(
            "Outbound: SNAT to the vps address",
            False,
            f"mx.{OUTSIDE} got nothing; home's queue and log say:\n{_mail_trail(run, 'home')}",
        )
    ok = record["peer"] == VPS_PUBLIC and record["peer"] != HOME_WAN
    return Result(
        "Outbound: mail from home reaches the outside MX from the vps address (SNAT)",
        ok,
        f"mx.{OUTSIDE} received it from {record['peer']} (HELO {record['helo']}); "
        f"home's own address is {HOME_WAN}",
    )


def check_dkim(run: Run) -> Result:
    """The outbound message as the MX received it verifies against the DKIM record that the
    lab's DNS serves from Mailgate's zone file (OpenDKIM's own verifier, in ``internet``)."""
    record = run.received("mx", run.subject("outbound"))
    if record is None:
        return Result("DKIM: outbound mail is signed", False, "mx.outside.example got nothing")
    message = run.lab.folder / "dkim-check.eml"
    message.write_text(record["message"])
    result = run.lab.hosts["internet"].run(f"opendkim-testmsg < {shlex.quote(str(message))}")
    signature = _lines(record["message"], "DKIM-Signature:")
    return Result(
        f"DKIM: mail from home is signed for {DOMAIN} and verifies against the published key",
        result.returncode == 0 and f"d={DOMAIN}" in record["message"],
        f"{signature.strip()[:90]}…\nopendkim-testmsg: exit {result.returncode} "
        f"{(result.stdout + result.stderr).strip() or '(verified)'}",
    )


def check_handshake(run: Run) -> Result:
    output = (
        run.lab.hosts["home"]
        .run(f"date +%s; wg show {TUNNEL_INTERFACE} latest-handshakes")
        .stdout.split()
    )
    now, stamps = (int(output[0]), [int(x) for x in output[2::2]]) if output else (0, [])
    age = now - max(stamps) if stamps and max(stamps) else None
    return Result(
        "WireGuard: the handshake between home and vps is recent",
        age is not None and age < HANDSHAKE_RECENT,
        f"latest handshake {age} s ago" if age is not None else "no handshake yet",
    )


def check_relay(run: Run) -> Result:
    subject = run.subject("relay")
    output = run.swaks(
        "relay",
        *("--server", "127.0.0.1", "--port", "25"),
        *("--from", f"carol@{DOMAIN}", "--to", f"friend@{OUTSIDE}"),
        *("--header", f"Subject: {subject}"),
    )
    record = run.received("smarthost", subject)
    if record is None:
        trail = _mail_trail(run, "relay")
        return Result("Relay profile: through the smarthost", False, f"{output}\n{trail}")
    header = _lines(record["message"], "From: ")
    ok = (
        record["tls"]
        and record["user"] == SMARTHOST_USER
        and record["mail_from"] == SMARTHOST_USER
        and SMARTHOST_USER in header
    )
    return Result(
        "Relay profile: AUTH at the smarthost, sender rewritten by the canonical map",
        ok,
        f"smarthost 127.0.0.1:1025: STARTTLS {record['tls']}, AUTH as {record['user']!r}, "
        f"MAIL FROM {record['mail_from']} (sent as carol@{DOMAIN}), header {header.strip()}",
    )


def check_wkd(run: Run) -> Result:
    key = OpenPGPKey.objects.get(
        mailbox=Mailbox.objects.get(domain__name=DOMAIN, local_part="alice")
    )
    ours = wkd.address_hash(run.alice)
    printed = subprocess.run(  # noqa: S603
        [WKS_CLIENT, "--print-wkd-hash", run.alice], capture_output=True, text=True, check=False
    ).stdout.split()
    url = wkd.urls(run.alice)[0]
    served = probe(run.lab.hosts["internet"], "https", url, str(run.lab.folder / "ca.pem"))
    body = bytes.fromhex(served.get("body", ""))
    ok = (
        bool(printed)
        and printed[0] == ours
        and served.get("status") == 200
        and body == bytes(key.wkd_key)
    )
    evidence = (
        f"hash {ours}; gpg-wks-client --print-wkd-hash: {printed[0] if printed else 'nothing'}\n"
        f"GET {url}: {served.get('status', served.get('error'))}, {len(body)} bytes, "
        f"{'the same bytes' if body == bytes(key.wkd_key) else 'NOT the bytes'} Mailgate exported "
        f"({len(bytes(key.wkd_key))} bytes)"
    )
    return Result("WKD: vps serves hu/<hash> with exactly the exported key", ok, evidence)


def check_mta_sts(run: Run) -> Result:
    """The MTA-STS policy (RFC 8461) of each domain, over HTTPS at mta-sts.<domain>, certificate
    checked against the lab's trust file, as a sending MTA fetches it."""
    evidence, ok = [], True
    for domain, mail_host in ((DOMAIN, MAIL_HOST), (FRIENDS, FRIENDS_MAIL_HOST)):
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        served = probe(run.lab.hosts["internet"], "https", url, str(run.lab.folder / "ca.pem"))
        body = bytes.fromhex(served.get("body", "")).decode(errors="replace")
        policy = [line for line in body.splitlines() if line]
        ok = ok and served.get("status") == 200 and "version: STSv1" in policy
        ok = ok and f"mx: {mail_host}" in policy
        evidence.append(f"GET {url}: {served.get('status', served.get('error'))} {policy}")
    return Result("MTA-STS: vps serves each domain's policy", ok, "\n".join(evidence))


def check_client_address(run: Run) -> Result:
    """Behind the gateway, the mail server sees the client's own address on the implicit-TLS
    ports too (the PROXY v2 header of Traefik's TCP routers, or of HAProxy), never the VPS's
    or the tunnel's: Postfix's submissions service and Dovecot's IMAP login name it, for a
    fresh login on each (on Mailu: its front's Dovecot proxy, for both)."""
    client = INTERNET_VPS_SIDE
    before = set(mail_log(run, "home").splitlines())
    run.submit(465, "--quit-after", "AUTH")
    run.inbox("alice", run.subject("client address"))  # an IMAPS login on 993
    # Mailu's Dovecots log to their output, with the level that syslog keeps apart; for 465
    # the front's proxy logs the client as it hands the session to Postfix.
    needles = (
        {"465": "submission-login: Info: ", "993": "imap-login: Info: Login:"}
        if run.lab.mailu
        else {"465": "postfix/submissions/smtpd", "993": "imap-login: Login:"}
    )
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not all(seen.get(port) for port in needles):
        time.sleep(0.2)
        fresh = [line for line in mail_log(run, "home").splitlines() if line not in before]
        seen = {
            port: [
                line
                for line in fresh
                if needle in line and ("rip=" in line or "connect from" in line)
            ]
            for port, needle in needles.items()
        }
    evidence, ok = [], True
    for port, lines in seen.items():
        addresses = sorted({_client_of(line) for line in lines})
        ok = ok and addresses == [client]
        evidence.append(f"home, port {port}: {len(lines)} line(s), client {addresses}")
        evidence += [line.split(": ", 1)[-1][:150] for line in lines[:1]]
    return Result(
        f"Client address: 465 and 993 reach home as {client} (PROXY v2), not as the gateway",
        ok,
        "\n".join(evidence),
    )


def _client_of(line: str) -> str:
    if "rip=" in line:
        return line.split("rip=", 1)[1].split(",", 1)[0]
    return line.rsplit("[", 1)[-1].split("]", 1)[0]


# Which program answers each public port of the VPS (and the loopback ports behind them).
GATEWAY_PROGRAMS = {
    True: {"25": "haproxy", **dict.fromkeys(("80", "443", "465", "587", "993"), "traefik")},
    False: dict.fromkeys(("25", "80", "443", "465", "587", "993"), "haproxy"),
}


def check_gateway_programs(run: Run) -> Result:
    """The gateway runs the shape the lab was built with: on the Traefik gateway, Traefik owns
    every port but 25 and HAProxy port 25 alone."""
    listening = run.lab.hosts["vps"].run("ss -Htlnp", timeout=10).stdout
    owners = {}
    for line in listening.splitlines():
        fields = line.split()
        port, program = fields[3].rsplit(":", 1)[-1], fields[-1].split('"')[1]
        owners[port] = program
    expected = GATEWAY_PROGRAMS[run.lab.traefik]
    shape = "Traefik + HAProxy for 25" if run.lab.traefik else "HAProxy for every port"
    ok = {port: owners.get(port) for port in expected} == expected
    evidence = "; ".join(
        f"{port}: {owners.get(port, 'nobody')}" for port in sorted(owners, key=int)
    )
    return Result(f"Gateway: {shape} answers the public ports", ok, evidence)


MAIL_TLS_PORTS = ("465", "587", "993")
MAILU_TLS_PORTS = ("443", *MAIL_TLS_PORTS)


def check_certificates(run: Run) -> Result:
    """Each name serves exactly the certificate Mailgate got for it from the lab's ACME
    server (Pebble), and on the Traefik gateway each name Traefik terminates one that Traefik
    got from Pebble itself; each checked against Pebble's root for that name: issuer, serial,
    expiry."""
    internet, ca = run.lab.hosts["internet"], str(run.lab.folder / "ca.pem")
    evidence, ok = [], True
    rows = Certificate.objects.filter(host__name__in=NAMES.values()).select_related("host")
    for certificate in rows.order_by("host__name", "name"):
        current = certificate.current
        ok = ok and current is not None
        for name, port in _served(certificate):
            seen = probe(internet, "certificate", name, port, ca)
            same = current is not None and seen.get("serial") == current.serial
            ok = ok and same and "Pebble" in seen.get("issuer", "")
            evidence.append(
                f"{name}:{port} ({certificate.host}): {_seen(seen)}"
                + ("" if same else f"; Mailgate's is {current.serial if current else 'none'}")
            )
    if run.lab.traefik:
        for name in traefik.terminated_names(mail_directory()):
            seen = probe(internet, "certificate", name, "443", ca)
            ok = ok and "Pebble" in seen.get("issuer", "")
            evidence.append(f"{name}:443 (Traefik's own ACME on {NAMES['vps']}): {_seen(seen)}")
    return Result(
        "Certificates: every name serves one from the lab's ACME server (Mailgate's, or "
        "Traefik's own)",
        ok and bool(evidence),
        "\n".join(evidence) or "Mailgate holds no certificate of the lab's hosts",
    )


def _seen(seen: dict) -> str:
    if "serial" not in seen:
        return str(seen.get("error"))
    return f"issuer {seen['issuer']}, serial {seen['serial']}, until {seen['until']}"


def _served(certificate: Certificate) -> list[tuple[str, str]]:
    """Where a client meets each of the certificate's names: the gateway's web names on 443
    (its own name is only the folder's: on 443 HAProxy passes that one to the mail server),
    a mail host name on the mail ports, and every name of Mailu's front on those and on 443
    (its admin and webmail, which the gateway passes through)."""
    if certificate.purpose == "gateway":
        return [(n, "443") for n in certificate.names if n.startswith(GATEWAY_PREFIXES)]
    if certificate.purpose == "mailu":
        return [(name, port) for name in certificate.names for port in MAILU_TLS_PORTS]
    return [(certificate.name, port) for port in MAIL_TLS_PORTS]


CHECKS: tuple[Callable[[Run], Result], ...] = (
    check_gateway_programs,
    check_inbound,
    check_auth_after_tls,
    check_implicit_tls,
    check_spoofed_sender,
    check_alias_sender,
    check_open_relay,
    check_direct_attack,
    check_tls,
    check_second_name,
    check_local_mail,
    check_outbound,
    check_dkim,
    check_handshake,
    check_relay,
    check_wkd,
    check_mta_sts,
    check_client_address,
    check_certificates,
)


# A Mailu home server runs no mail server on the host itself: root's mail has nowhere to go.
NOT_FOR_MAILU = (check_local_mail,)


def run_all(lab: Lab) -> list[Result]:
    run = Run(lab)
    results = []
    for check in CHECKS:
        if lab.mailu and check in NOT_FOR_MAILU:
            continue
        try:
            results.append(check(run))
        except Exception as exc:  # one broken check must not hide the others' evidence
            results.append(Result(check.__name__, False, f"{type(exc).__name__}: {exc}"))
    return results
