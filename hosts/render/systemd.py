"""How rendered files are activated on a host: through systemd, the service manager of every
supported distribution. Kept in one place so a host without systemd changes only this module."""

from gateway.writers import lines, shell_quote


def reload(unit: str) -> str:
    return f"systemctl reload-or-restart {shell_quote(unit)}"


def enable_now(unit: str) -> str:
    return f"systemctl daemon-reload && systemctl enable --now {shell_quote(unit)}"


def oneshot(description: str, script: str, *, ordering: list[str]) -> bytes:
    """A unit that runs ``script enable`` once at boot (and ``disable`` when stopped), kept as
    active so that ``ordering`` (Requires=, After=, Before= lines) ties it to other units."""
    return lines(
        [
            "[Unit]",
            f"Description={description}",
            *ordering,
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            f"ExecStart={script} enable",
            f"ExecStop={script} disable",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
    )
