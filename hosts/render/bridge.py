"""The Proton Mail Bridge as a service on the host whose Postfix relays through it (the Proton
Bridge relay guide, ``docs/reference-setups.md``): a systemd unit for ``protonmail-bridge
--noninteractive``, and the one-time login steps that only a person can do.

The Bridge listens on the loopback of the machine it runs on, so it belongs to the host that
uses a Proton Bridge relay at 127.0.0.1 (or ::1 / localhost).
"""

from gateway.bundle import File, Unit
from gateway.writers import lines
from hosts.choices import RelayKind
from hosts.render.context import RenderContext

UNIT_NAME = "protonmail-bridge.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
SERVICE_USER = "protonbridge"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

INSTRUCTIONS = f"""\
The Bridge needs one interactive login that cannot be automated. On this host, as root:

  apt install pass ./protonmail-bridge_*.deb
  id -u {SERVICE_USER} || useradd --system --create-home --shell /usr/sbin/nologin {SERVICE_USER}
  sudo -u {SERVICE_USER} -H gpg --batch --passphrase '' --quick-gen-key 'ProtonMail Bridge' \\
      default default never
  sudo -u {SERVICE_USER} -H pass init 'ProtonMail Bridge'
  sudo -u {SERVICE_USER} -H protonmail-bridge --cli
      >>> login      (your Proton address, password and second factor)
      >>> info       (note the SMTP user name and password; they are not your Proton password)
      >>> exit
  systemctl start {UNIT_NAME}

Then enter the SMTP user name and password from 'info' in Mailgate's relay and deploy again.
The gpg key has no passphrase so that pass can open the store unattended: use it for nothing
else."""


def units(ctx: RenderContext) -> list[Unit]:
    relay = ctx.host.relay
    if not (
        (ctx.host.is_relay or ctx.host.is_mailserver)
        and relay
        and relay.kind == RelayKind.PROTON_BRIDGE
        and relay.host in LOOPBACK
    ):
        return []
    return [
        Unit(
            name="protonmail-bridge",
            files=(File(UNIT_PATH, lines(unit_file())),),
            # Started only once the person has logged in (see the instructions); restarted on
            # later changes if it runs.
            activate=(
                f"systemctl daemon-reload && systemctl enable {UNIT_NAME} && "
                f"systemctl try-restart {UNIT_NAME}",
            ),
            instructions=INSTRUCTIONS,
        )
    ]


def unit_file() -> list[str]:
    return [
        "[Unit]",
        "Description=Proton Mail Bridge for Postfix (smarthost on 127.0.0.1:1025)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        f"User={SERVICE_USER}",
        "ExecStart=/usr/bin/protonmail-bridge --noninteractive",
        "Restart=on-failure",
        "RestartSec=10",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
