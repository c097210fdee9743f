"""Mailu's own code, run inside Mailu's virtualenv (``.venv-mailu``) for ``tests/mailu_oracle.py``;
Mailgate never imports this file, and its own virtualenv could not (no Flask, no socrate).

``serve`` runs Mailu's ``flask`` command line many times from one import. Importing Mailu's
admin takes two seconds, so one ``flask`` process per command would make the oracle tests crawl.
Each line on stdin is a request, JSON ``{"args": [...], "env": {...}}``; the command runs in a
fork through Flask's own entry point, which builds a Mailu app from the environment (so each
request may name another database), and one line of JSON answers with its exit code and output.

``verify`` asks Mailu whether a user's password is right, as its logins do; ``login`` asks the
check its IMAP/POP3/SMTP front makes (``check_credentials``: application tokens and the
per-protocol switches too).

``render`` makes one container's configuration as its ``start.py`` does: the environment through
socrate's ``set_env``, then Mailu's templates through socrate's ``conf.jinja``.
"""

import contextlib
import glob
import io
import json
import os
import sys
from pathlib import Path


def serve() -> None:
    sys.path.insert(0, os.getcwd())  # as ``flask`` finds FLASK_APP=mailu: in the admin folder
    import mailu  # noqa: F401 (the two seconds, paid once)
    from flask.cli import cli

    # Answers go out on a copy of stdout; anything Mailu writes to fd 1 itself lands in stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        # Each command runs in a fork, as fresh as a new ``flask`` process: Mailu keeps state
        # in module globals (models.MailuConfig's collections) that a second run would reuse.
        child = os.fork()
        if child == 0:
            answers.write(json.dumps(run_flask(cli, **json.loads(line))) + "\n")
            answers.flush()
            os._exit(0)
        os.waitpid(child, 0)


def run_flask(cli, args: list[str], env: dict[str, str]) -> dict:
    os.environ.update(env)
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            cli.main(args=args, prog_name="flask")
            code = 0
        except SystemExit as exit:  # click's standalone mode always exits
            code = exit.code if isinstance(exit.code, int) else 1
    return {"code": code, "output": output.getvalue()}


def verify(email: str, *passwords: str) -> None:
    """Print, one line each, whether Mailu accepts each of ``passwords`` for the user ``email``
    of its database: the check its login endpoints make (``User.check_password``)."""
    sys.path.insert(0, os.getcwd())
    import mailu
    from mailu import models

    with mailu.create_app().app_context():
        for password in passwords:
            print(models.User.query.get(email).check_password(password))


def login(email: str, protocol: str, *passwords: str) -> None:
    """Print, one line each, whether Mailu's front lets ``email`` log in over ``protocol``
    with each of ``passwords`` (``mailu.internal.nginx.check_credentials``)."""
    sys.path.insert(0, os.getcwd())
    import mailu
    from mailu import models
    from mailu.internal import nginx

    with mailu.create_app().app_context():
        for password in passwords:
            user = models.User.query.get(email)
            print(nginx.check_credentials(user, password, "192.0.2.1", protocol, "993", "4242"))


# What each container's start.py renders: templates under src/core/ and the folder they go to.
TEMPLATES = {
    "postfix": [("postfix/conf/*.cf", "postfix")],
    "dovecot": [("dovecot/conf/*.conf", "dovecot")],
    "nginx": [  # the front: nginx, and the Dovecot proxy for IMAP, POP3, submission, sieve
        ("nginx/conf/tls.conf", "nginx"),
        ("nginx/conf/proxy.conf", "nginx"),
        ("nginx/conf/nginx.conf", "nginx"),
        ("nginx/dovecot/login.lua", "front-dovecot"),
        ("nginx/dovecot/proxy.conf", "front-dovecot"),
    ],
    "rspamd": [("rspamd/conf/*", "rspamd/local.d")],
}


def front_files(args) -> tuple[str, str]:
    """nginx/config.py's certificate and key paths, for the one TLS_FLAVOR Mailgate sets."""
    cert = "/certs/" + args.get("TLS_CERT_FILENAME", "cert.pem")
    key = "/certs/" + args.get("TLS_KEYPAIR_FILENAME", "key.pem")
    return {"cert": (cert, key)}[args["TLS_FLAVOR"]]


def render(container: str, core: str, out: str, extra: str) -> None:
    """Render ``container``'s templates from the environment into ``out``; ``extra`` is JSON
    of what its start.py reads from the container itself (nginx's resolver), which this machine
    cannot know."""
    from socrate import conf, system

    # set_env also deletes every *.pid file under /run (a container's leftovers): on a shared
    # machine that would hit other services, so its shell commands do nothing here.
    os.system = lambda command: 0
    os.environ.setdefault("LD_PRELOAD", "")  # else set_env asks for hardened_malloc
    args = system.set_env()
    if container == "postfix":  # postfix/start.py: the default it sets, then os.environ
        os.environ.setdefault("DEFER_ON_TLS_ERROR", "True")
        args = os.environ
    elif container == "dovecot":  # dovecot/start.py renders with os.environ
        args = os.environ
    elif container == "nginx":  # nginx/config.py
        args["TLS_PERMISSIVE"] = str(args.get("TLS_PERMISSIVE")).lower() not in ("false", "no")
        args["TLS"] = front_files(args)
    args.update(json.loads(extra))
    if container == "postfix" and "RELAYUSER" in os.environ:
        TEMPLATES["postfix"].append(("postfix/conf/sasl_passwd", "postfix"))
    for pattern, folder in TEMPLATES[container]:
        target = Path(out, folder)
        target.mkdir(parents=True, exist_ok=True)
        for template in sorted(glob.glob(os.path.join(core, pattern))):
            conf.jinja(template, args, str(target / os.path.basename(template)))


if __name__ == "__main__":
    {"serve": serve, "verify": verify, "login": login, "render": render}[sys.argv[1]](*sys.argv[2:])
