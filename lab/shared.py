"""Where the lab finds what lives beside the project, not in it: Mailu's own source, run as the
programs of the Mailu home server (``lab.mailu``). The one setting is the tests' own
(``MAILGATE_SHARED_DIR``, default ``../shared`` next to the checkout, as ``tests/shared.py``
reads it); the lab fails with the reason where the tests would skip."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("MAILGATE_SHARED_DIR") or ROOT.parent / "shared")


class MissingShared(RuntimeError):
    """What the lab needs from beside the project is not there."""


def shared_path(*parts: str) -> Path:
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        raise MissingShared(
            f"{path} is missing: set MAILGATE_SHARED_DIR to the folder beside the project"
        )
    return path
