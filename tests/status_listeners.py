"""Listeners that status tests run inside a lab host (``python status_listeners.py CONFIG``):
implicit-TLS servers presenting given certificates, and a minimal SMTP server that accepts or
refuses to relay. CONFIG is JSON: {"smtp": "accept" | "refuse", "tls": {"443": [cert, key]}}."""

import json
import socketserver
import ssl
import sys
import threading

REPLIES = {
    b"EHLO": b"250 lab.example",
    b"HELO": b"250 lab.example",
    b"MAIL": b"250 2.1.0 Ok",
    b"RSET": b"250 2.0.0 Ok",
}


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Smtp(socketserver.StreamRequestHandler):
    accept = False

    def handle(self):
        self.wfile.write(b"220 lab.example ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 Bye\r\n")
                return
            if verb == b"RCPT":
                reply = b"250 2.1.5 Ok" if self.accept else b"554 5.7.1 Relay access denied"
            else:
                reply = REPLIES.get(verb, b"502 5.5.2 Error: command not recognized")
            self.wfile.write(reply + b"\r\n")


def tls_handler(context: ssl.SSLContext):
    class Tls(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                with context.wrap_socket(self.request, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass  # a client that refuses the certificate hangs up mid-handshake

    return Tls


def main(config: dict) -> None:
    Smtp.accept = config["smtp"] == "accept"
    servers = [Server(("0.0.0.0", 25), Smtp)]  # noqa: S104 (inside a lab namespace)
    for port, (certificate, key) in config["tls"].items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        servers.append(Server(("0.0.0.0", int(port)), tls_handler(context)))  # noqa: S104
    threads = [threading.Thread(target=server.serve_forever) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
