"""A mailbox's own settings proven in the lab (docs/mailbox-features.md, "What the lab must prove"),
after ``lab verify``: each is changed in Mailgate's models as a family member would, the home server
is deployed, and a client outside sees the effect through the gateway:

- a device password logs in over IMAP and SMTP submission, the mail server reports that use
  back as its last use, and it stops working once revoked;
- IMAP turned off refuses the login with the main password, and on again accepts it;
- an auto-reply reaches the outside sender once, not for a second message;
- a forward to an outside address reaches the outside MX with an SRS sender of the family's
  domain, which SPF at that MX passes (the original sender's domain would not);
- a mail program outside finds the servers through the gateway, over HTTPS with a trusted
  certificate: Thunderbird's autoconfig at ``autoconfig.<domain>``, Outlook's autodiscover at
  ``autodiscover.<domain>`` answering with the address it asked for as the login.

Each proof returns a ``Result`` as the checks of ``lab.verify`` do, with its evidence."""

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

from gateway import client_setup
from gateway.models import AppPassword, Mailbox
from hosts import services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Host
from lab.verify import WAIT, Result, Run
from lab.world import DOMAIN, MAIL_HOST, NAMES, OUTSIDE, VPS_PUBLIC, Lab, probe

REPLY_SUBJECT = "Away until Monday"


def deploy_home() -> str:
    """Deploy the home server now; the deployment's outcome in a word."""
    deployment = services.deployment_run_here(
        host=Host.objects.get(name=NAMES["home"]), trigger=DeploymentTrigger.CLI
    )
    if deployment.status != DeploymentStatus.SUCCEEDED:
        raise AssertionError(f"the home server's deployment {deployment.status}:\n{deployment.log}")
    return deployment.status


def alice() -> Mailbox:
    return Mailbox.objects.get(domain__name=DOMAIN, local_part="alice")


def imap_login(run: Run, password: str) -> dict:
    ca = str(run.lab.folder / "ca.pem")
    return probe(run.lab.hosts["internet"], "login", MAIL_HOST, run.alice, ca, password=password)


def submission_login(run: Run, password: str, *, tries: int = 1) -> tuple[str, int]:
    """AUTH on 587, tried up to ``tries`` times a second apart. Right after a deployment the
    first AUTH with a new device password failed once in the lab ("535 5.7.8 ... reason
    unavailable") while IMAP accepted it; the cause is not known yet, so the evidence says
    how many tries it took."""
    output, attempt = "", 0
    while attempt < tries:
        attempt += 1
        output = run.swaks(
            "internet",
            *("--server", VPS_PUBLIC, "--port", "587", "--tls", "--auth", "PLAIN"),
            *("--auth-user", run.alice, "--quit-after", "AUTH"),
            password=password,
        )
        if "235 " in output:
            break
        time.sleep(1)
    return output, attempt


def prove_device_password(run: Run) -> Result:
    row, secret = AppPassword.issue(mailbox=alice(), name="lab phone")
    deploy_home()
    imap, (smtp, tried) = imap_login(run, secret), submission_login(run, secret, tries=5)
    # Its last use, as the mail server reports it (Dovecot's last_login, Mailu's admin log).
    services.mailbox_usage_refresh()
    row.refresh_from_db()
    last_used = row.last_used_at
    row.delete()
    deploy_home()
    imap_after, (smtp_after, _) = imap_login(run, secret), submission_login(run, secret)
    accepted, refused = "235 " in smtp, "235 " not in smtp_after
    ok = imap.get("ok") and accepted and not imap_after.get("ok") and refused
    ok = ok and last_used is not None
    return Result(
        "Device password: logs in over IMAP and SMTP, refused once revoked",
        bool(ok),
        f"issued: IMAP {imap}; submission {_reply(smtp, '235 ', '535 ')} (try {tried} of 5); "
        f"last used (as the server reports it): {last_used or 'not reported'}\n"
        f"revoked: IMAP {imap_after}; submission {_reply(smtp_after, '235 ', '535 ')}",
    )


def prove_imap_switch(run: Run) -> Result:
    mailbox = alice()
    mailbox.imap_enabled = False
    mailbox.save()
    deploy_home()
    off = imap_login(run, run.password("alice"))
    mailbox.imap_enabled = True
    mailbox.save()
    deploy_home()
    on = imap_login(run, run.password("alice"))
    return Result(
        "IMAP turned off refuses the login; on again, it is accepted",
        not off.get("ok") and bool(on.get("ok")),
        f"off: {off}\non: {on}",
    )


def prove_auto_reply(run: Run) -> Result:
    mailbox = alice()
    mailbox.autoreply_enabled = True
    mailbox.autoreply_subject = REPLY_SUBJECT
    mailbox.autoreply_body = "I am away and will answer next week."
    mailbox.save()
    deploy_home()
    sent = [
        run.swaks(
            "internet",
            *("--server", VPS_PUBLIC, "--port", "25", "--helo", f"client.{OUTSIDE}"),
            *("--from", f"friend@{OUTSIDE}", "--to", run.alice),
            *("--header", f"Subject: {run.subject(f'to an absent alice {number}')}"),
        )
        for number in (1, 2)
    ]
    first = run.received("mx", REPLY_SUBJECT)
    replies = _count(run, REPLY_SUBJECT, settle=5)
    mailbox.autoreply_enabled = False
    mailbox.save()
    deploy_home()
    queued = sum("queued as" in output for output in sent)
    return Result(
        "Auto-reply: the outside sender gets one reply for two messages",
        queued == 2 and first is not None and replies == 1,
        f"{queued} of 2 messages accepted at {VPS_PUBLIC}:25; mx.{OUTSIDE} got {replies} "
        f"repl{'y' if replies == 1 else 'ies'}"
        + (f" from {first['peer']}, To: friend@{OUTSIDE}" if first else ""),
    )


def prove_forward(run: Run) -> Result:
    mailbox = alice()
    mailbox.forward_to = [f"forwarded@{OUTSIDE}"]
    mailbox.forward_keep_copy = True
    mailbox.save()
    deploy_home()
    subject = run.subject("forwarded by alice")
    sent = run.swaks(
        "internet",
        *("--server", VPS_PUBLIC, "--port", "25", "--helo", f"client.{OUTSIDE}"),
        *("--from", f"friend@{OUTSIDE}", "--to", run.alice, "--header", f"Subject: {subject}"),
    )
    record = run.received("mx", subject)
    mailbox.forward_to = []
    mailbox.save()
    deploy_home()
    if record is None:
        return Result("Forward: SRS passes SPF at the outside MX", False, f"not received\n{sent}")
    internet, peer, helo = run.lab.hosts["internet"], record["peer"], record["helo"]
    srs = probe(internet, "spf", peer, record["mail_from"], helo)
    original = probe(internet, "spf", peer, f"friend@{OUTSIDE}", helo)
    ok = (
        record["mail_from"].upper().startswith("SRS0")
        and record["mail_from"].endswith(f"@{DOMAIN}")
        and srs.get("result") == "pass"
        and original.get("result") != "pass"
        and f"forwarded@{OUTSIDE}" in record["rcpt_to"]
    )
    return Result(
        "Forward: SRS passes SPF at the outside MX",
        ok,
        f"mx.{OUTSIDE} got it from {peer} (HELO {helo}), MAIL FROM {record['mail_from']}, "
        f"RCPT TO {record['rcpt_to']}\nSPF of that sender: {srs}\n"
        f"SPF had the sender stayed friend@{OUTSIDE}: {original}",
    )


AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
    'exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}'
    "</EMailAddress><AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request>"
    "</Autodiscover>"
)


def prove_client_setup(run: Run) -> Result:
    ca = str(run.lab.folder / "ca.pem")
    internet = run.lab.hosts["internet"]
    autoconfig_url = f"https://autoconfig.{DOMAIN}/mail/config-v1.1.xml?emailaddress={run.alice}"
    autoconfig = probe(internet, "https", autoconfig_url, ca)
    config = _xml(autoconfig)
    imap_host = config.findtext("emailProvider/incomingServer/hostname") if config else None
    autodiscover_url = f"https://autodiscover.{DOMAIN}/autodiscover/autodiscover.xml"
    body = AUTODISCOVER_REQUEST.format(address=run.alice, schema=client_setup.OUTLOOK_NS)
    autodiscover = probe(internet, "https", autodiscover_url, ca, body)
    answer = _xml(autodiscover)
    names = {"o": client_setup.OUTLOOK_NS}
    protocols = answer.findall(".//o:Protocol", names) if answer else []
    logins = [protocol.findtext("o:LoginName", namespaces=names) for protocol in protocols]
    servers = {protocol.findtext("o:Server", namespaces=names) for protocol in protocols}
    ok = imap_host == MAIL_HOST and logins == [run.alice, run.alice] and servers == {MAIL_HOST}
    evidence = (
        f"GET {autoconfig_url}: {autoconfig.get('status', autoconfig.get('error'))}, "
        f"IMAP at {imap_host}\n"
        f"POST {autodiscover_url} for {run.alice}: "
        f"{autodiscover.get('status', autodiscover.get('error'))}, servers {sorted(servers)}, "
        f"logins {logins} (certificates checked against the lab CA)"
    )
    return Result("Client setup: autoconfig and autodiscover through the gateway", ok, evidence)


def _xml(served: dict) -> ET.Element | None:
    if served.get("status") != 200:
        return None
    return ET.fromstring(bytes.fromhex(served["body"]))  # noqa: S314 (the lab's own gateway)


def _count(run: Run, subject: str, *, settle: float) -> int:
    """How many messages with ``subject`` the outside MX kept, once ``settle`` seconds passed
    without a new one (a second reply would come as fast as the first)."""
    seen, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        count = sum(
            f"Subject: {subject}" in path.read_text()
            for path in (run.lab.spool / "mx").glob("*.json")
        )
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            break
        time.sleep(0.5)
    return seen


def _reply(output: str, *needles: str) -> str:
    """The last line of an SMTP dialogue with one of ``needles``, or its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = [line for line in lines if any(needle in line for needle in needles)]
    return (found or lines or [""])[-1]


PROOFS: tuple[Callable[[Run], Result], ...] = (
    prove_device_password,
    prove_imap_switch,
    prove_auto_reply,
    prove_forward,
    prove_client_setup,
)


def prove_all(lab: Lab) -> list[Result]:
    run = Run(lab)
    return [proof(run) for proof in PROOFS]
