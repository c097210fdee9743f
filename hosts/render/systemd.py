"""How rendered files are activated on a host: through systemd, the service manager of every
supported distribution. Kept in one place so a host without systemd changes only this module."""

from gateway.writers import shell_quote


def reload(unit: str) -> str:
    return f"systemctl reload-or-restart {shell_quote(unit)}"


def restart(unit: str) -> str:
    return f"systemctl restart {shell_quote(unit)}"


def enable_now(unit: str) -> str:
    return f"systemctl daemon-reload && systemctl enable --now {shell_quote(unit)}"
