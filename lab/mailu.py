"""Mailu's containers in the lab, played by the stand-in ``docker`` (``lab.docker``) on a Mailu
home server: Mailu's own start scripts and templates, run from its source beside the project
(``lab.shared``; read-only, so Python writes no caches) by Mailu's virtualenv (``.venv-mailu``,
made by ``bin/bootstrap --test``), with Debian's Postfix, Dovecot, nginx, rspamd and Redis as
the programs of the images. Nothing of Mailu is copied here.

Per image, what the container's ``/start.py`` does is done by Mailu's own script where it can
run here: ``smtp`` (Postfix with Podop and the MTA-STS resolver), ``imap`` (Dovecot with Podop)
and ``antispam`` (rspamd) run their start.py as it is. Two cannot, and run ``python -m
lab.mailu`` instead, which does what theirs does with the one difference named:

- ``admin``: its start.py first waits for a resolver that validates DNSSEC (``example.org``
  with the AD flag) and for the file Docker puts in every container; the lab's DNS signs
  nothing and no Docker runs, so it would wait forever. The rest is the same: the ownership of
  /dkim and /data, ``flask db upgrade``, then gunicorn with Mailu's own options.
- ``front``: its start.py (not part of Mailu's source tree here) runs Mailu's ``config.py``,
  for ``TLS_FLAVOR=cert`` its certificate watcher (``certwatcher.py``), Mailu's Dovecot proxy
  and nginx. The lab runs config.py as it is, which finds the certificate Mailgate deployed from
  the lab's Pebble where Mailu reads it (``/certs/cert.pem`` and ``key.pem``, the certs
  volume); it runs no watcher (Mailgate restarts the front when the certificate changes,
  ``hosts.render.mailu.front_restart``), and reads Mailu's nginx.conf with Debian's differences
  from Alpine (docs/facts.md §3): nginx 1.22 has no ``http2 on;``, the user is www-data, ISRG
  Root X1 has another file name.

Not played (``up -d`` says so): ``resolver`` (unbound, which is not installed; the containers
ask the home server's resolver) and ``webmail`` (Snappymail, PHP: no lab check reads mail in a
browser).
"""

import os
import subprocess
import sys
from pathlib import Path

from lab.docker import Image
from lab.shared import ROOT, shared_path

VENV = ROOT / ".venv-mailu"
NOT_PLAYED = {
    "ghcr.io/mailu/unbound": "unbound is not installed; the containers ask the host's resolver",
    "ghcr.io/mailu/webmail": "Snappymail (PHP) is not installed, and no lab check needs it",
}
# nginx.conf as Mailu renders it for Alpine, as Debian 12's nginx reads it (docs/facts.md §3).
DEBIAN_NGINX = (
    ("http2 on;", ""),
    ("user nginx;", "user www-data;"),
    ("/etc/ssl/certs/ca-cert-ISRG_Root_X1.pem", "/etc/ssl/certs/ISRG_Root_X1.pem"),
)


def core() -> Path:
    return shared_path("oracles", "mailu", "src", "core")


def images() -> dict[str, "Image | str"]:
    """Each Mailu image of the compose file: what the lab runs for it, or why it does not."""
    source, python = core(), str(VENV / "bin" / "python")
    environment = {
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "PYTHONDONTWRITEBYTECODE": "1",  # Mailu's source is read-only
        "PYTHONPATH": str(ROOT),  # for ``python -m lab.mailu``
        "LD_PRELOAD": "",  # else socrate asks for Alpine's hardened_malloc
    }

    def start(folder: str, **options) -> Image:
        return Image([python, str(source / folder / "start.py")], environment, **options)

    return {
        "redis": Image(["redis-server", "--protected-mode", "no", "--dir", "/data"]),
        "ghcr.io/mailu/admin": Image(
            [python, "-m", "lab.mailu", "admin"],
            {**environment, "FLASK_APP": "mailu"},  # the image's ENV
            workdir=str(source / "admin"),
        ),
        "ghcr.io/mailu/nginx": Image(
            [python, "-m", "lab.mailu", "front"],
            environment,
            layers=(
                (str(source / "nginx/conf"), "/conf"),
                (str(source / "nginx/dovecot"), "/dovecot_conf"),
            ),
        ),
        "ghcr.io/mailu/postfix": start(
            "postfix", layers=((str(source / "postfix/conf"), "/conf"),)
        ),
        # start.py renders scripts into /conf/bin and gives /conf and /var/lib/dovecot to mail.
        # Debian 12 packages no fts_flatcurve, the plugin of Mailu's full-text search.
        "ghcr.io/mailu/dovecot": Image(
            [python, str(source / "dovecot/start.py")],
            {**environment, "FULL_TEXT_SEARCH": "off"},
            copies=((str(source / "dovecot/conf"), "/conf"),),
            fresh=("/var/lib/dovecot",),
        ),
        "ghcr.io/mailu/rspamd": start("rspamd", layers=((str(source / "rspamd/conf"), "/conf"),)),
        **NOT_PLAYED,
    }


def admin() -> None:
    """admin/start.py without its two waits (see above)."""
    from socrate import system

    os.system("chown mailu:mailu -R /dkim")  # noqa: S605, S607
    os.system("find /data | grep -v /fetchmail | xargs -n1 chown mailu:mailu")  # noqa: S605, S607
    system.drop_privs_to("mailu")
    system.set_env(["SECRET"])
    subprocess.run(["flask", "db", "upgrade"], check=True)  # noqa: S607
    threads, level = os.environ.get("CPU_COUNT", "1"), os.environ.get("LOG_LEVEL", "INFO")
    # Mailu's own command line; /dev/shm is the container's own (lab.docker.FRESH).
    gunicorn = [
        *("gunicorn", "--threads", threads, "-b", "0.0.0.0:8080"),
        *("--logger-class", "mailu.Logger", "--log-level", level),
        *("--worker-tmp-dir", "/dev/shm", "--error-logfile", "-", "--preload"),  # noqa: S108
        "mailu:create_app()",
    ]
    os.execvp("gunicorn", gunicorn)  # noqa: S606, S607


def front() -> None:
    """Mailu's config.py, Debian's reading of its nginx.conf, then its Dovecot proxy and nginx."""
    subprocess.run([sys.executable, str(core() / "nginx" / "config.py")], check=True)  # noqa: S603
    for name in ("nginx.conf", "tls.conf"):
        path = Path("/etc/nginx") / name
        text = path.read_text()
        for alpine, debian in DEBIAN_NGINX:
            text = text.replace(alpine, debian)
        path.write_text(text)
    subprocess.run(["dovecot", "-c", "/etc/dovecot/proxy.conf"], check=True)  # noqa: S607
    os.execvp("nginx", ["nginx", "-g", "daemon off;"])  # noqa: S606, S607


if __name__ == "__main__":
    {"admin": admin, "front": front}[sys.argv[1]]()
