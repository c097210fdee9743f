"""Run a bundle's checks on this machine against a staged folder, as the deploy engine runs
them on the host: for ``manage.py render --check`` and for the tests."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gateway.bundle import Bundle


@dataclass(frozen=True)
class CheckResult:
    unit: str
    script: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_checks(bundle: Bundle, stage: Path) -> list[CheckResult]:
    return [run_check(unit.name, script, stage) for unit in bundle.units for script in unit.checks]


def run_check(unit: str, script: str, stage: Path) -> CheckResult:
    result = subprocess.run(  # noqa: S603 (Mailgate's own check scripts, values quoted)
        ["/bin/bash", "-c", script],
        env={**os.environ, "STAGE": str(stage.resolve())},
        capture_output=True,
        text=True,
        check=False,
    )
    return CheckResult(unit, script, result.returncode, result.stdout + result.stderr)
