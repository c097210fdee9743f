"""SMTP servers that stand in for what the lab cannot run: an outside domain's MX (in
``internet``) and the Proton Mail Bridge (a smarthost on 127.0.0.1:1025 of the relay host, which
speaks STARTTLS and wants AUTH, as the Bridge does). Each message received is written to the spool
folder as JSON with what the checks need as evidence: the client's address, whether TLS was on,
the authenticated user, the envelope and the message.

    python -m lab.smtp --listen 192.0.2.25:25 --spool DIR [--tls CERT KEY]

With ``LAB_SMTP_AUTH=user:password`` in the environment (never on the command line, where any
process could read it) the server offers AUTH PLAIN and LOGIN after STARTTLS and refuses mail
without it.
"""

import argparse
import base64
import binascii
import json
import os
import secrets
import socketserver
import ssl
from pathlib import Path

MAX_MESSAGE = 10 * 1024 * 1024


class Session(socketserver.StreamRequestHandler):
    """One SMTP conversation (RFC 5321, the subset that Postfix and swaks use)."""

    timeout = 60

    def setup(self):
        super().setup()
        self.tls = False
        self.user = ""
        self.helo = ""
        self._reset()

    def _reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def reply(self, text: str):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.reply(f"220 {self.server.name} ESMTP Mailgate lab")
        while line := self.rfile.readline(4096):
            verb, _, argument = line.decode(errors="replace").strip().partition(" ")
            handler = getattr(self, f"smtp_{verb.upper()}", None)
            if handler is None:
                self.reply("502 5.5.2 Command not recognised")
            elif handler(argument) == "quit":
                return

    def smtp_EHLO(self, argument):
        self.helo = argument
        extensions = ["PIPELINING", "8BITMIME", f"SIZE {MAX_MESSAGE}"]
        if self.server.context and not self.tls:
            extensions.append("STARTTLS")
        if self.server.credentials and self.tls:
            extensions.append("AUTH PLAIN LOGIN")
        lines = [self.server.name, *extensions]
        for index, text in enumerate(lines):
            self.reply(f"250{' ' if index == len(lines) - 1 else '-'}{text}")

    def smtp_HELO(self, argument):
        self.helo = argument
        self.reply(f"250 {self.server.name}")

    def smtp_STARTTLS(self, argument):
        if not self.server.context or self.tls:
            return self.reply("502 5.5.1 STARTTLS not available")
        self.reply("220 2.0.0 Ready to start TLS")
        self.request = self.server.context.wrap_socket(self.request, server_side=True)
        self.rfile = self.request.makefile("rb")
        self.wfile = self.request.makefile("wb")
        self.tls, self.helo = True, ""
        self._reset()

    def smtp_AUTH(self, argument):
        if not (self.server.credentials and self.tls):
            return self.reply("503 5.5.1 AUTH not available")
        mechanism, _, initial = argument.partition(" ")
        try:
            if mechanism.upper() == "PLAIN":
                response = initial or self._challenge("")
                _, user, password = _decode(response).split("\0", 2)
            elif mechanism.upper() == "LOGIN":
                user = _decode(initial or self._challenge("VXNlcm5hbWU6"))
                password = _decode(self._challenge("UGFzc3dvcmQ6"))
            else:
                return self.reply("504 5.5.4 Unrecognised authentication mechanism")
        except (ValueError, binascii.Error):
            return self.reply("501 5.5.2 Cannot decode the response")
        expected_user, expected_password = self.server.credentials
        if secrets.compare_digest(f"{user}\0{password}", f"{expected_user}\0{expected_password}"):
            self.user = user
            return self.reply("235 2.7.0 Authentication successful")
        self.reply("535 5.7.8 Authentication credentials invalid")

    def _challenge(self, text: str) -> str:
        self.reply(f"334 {text}")
        return self.rfile.readline(4096).decode().strip()

    def smtp_MAIL(self, argument):
        if self.server.credentials and not self.user:
            return self.reply("530 5.7.0 Authentication required")
        self.mail_from = _path(argument, "FROM:")
        self.rcpt_to = []
        self.reply("250 2.1.0 Ok")

    def smtp_RCPT(self, argument):
        if self.mail_from is None:
            return self.reply("503 5.5.1 MAIL first")
        self.rcpt_to.append(_path(argument, "TO:"))
        self.reply("250 2.1.5 Ok")

    def smtp_DATA(self, argument):
        if not self.rcpt_to:
            return self.reply("503 5.5.1 RCPT first")
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        lines = []
        while (line := self.rfile.readline(MAX_MESSAGE)) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        self.server.keep(self, b"".join(lines))
        self._reset()
        self.reply("250 2.0.0 Ok: queued")

    def smtp_RSET(self, argument):
        self._reset()
        self.reply("250 2.0.0 Ok")

    def smtp_NOOP(self, argument):
        self.reply("250 2.0.0 Ok")

    def smtp_QUIT(self, argument):
        self.reply("221 2.0.0 Bye")
        return "quit"


def _decode(text: str) -> str:
    return base64.b64decode(text, validate=True).decode()


def _path(argument: str, prefix: str) -> str:
    """The address of ``FROM:<a@b> SIZE=…``; parameters after it are ignored."""
    if not argument.upper().startswith(prefix):
        return ""
    return argument[len(prefix) :].strip().split(" ", 1)[0].strip("<>")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, *, spool: Path, context, credentials, name: str):
        super().__init__(address, Session)
        self.spool, self.context, self.credentials, self.name = spool, context, credentials, name

    def keep(self, session: Session, message: bytes) -> None:
        record = {
            "peer": session.client_address[0],
            "helo": session.helo,
            "tls": session.tls,
            "user": session.user,
            "mail_from": session.mail_from,
            "rcpt_to": session.rcpt_to,
            "message": message.decode(errors="replace"),
        }
        path = self.spool / f"{secrets.token_hex(8)}.json"
        path.with_suffix(".tmp").write_text(json.dumps(record))
        path.with_suffix(".tmp").rename(path)  # readers never see half a message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--name", default="lab.invalid", help="the name in the greeting")
    options = parser.parse_args()
    context = None
    if options.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*options.tls)
    auth = os.environ.get("LAB_SMTP_AUTH", "")
    credentials = tuple(auth.split(":", 1)) if auth else None
    host, port = options.listen.rsplit(":", 1)
    options.spool.mkdir(parents=True, exist_ok=True)
    server = Server(
        (host, int(port)),
        spool=options.spool,
        context=context,
        credentials=credentials,
        name=options.name,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
