"""What every renderer returns: a host's **bundle** of files, grouped in units that say how to
check the files on the host before anything is activated, and how to activate them.

Checks and activation steps are shell snippets run on the target host. Checks run while the new
files sit in a staging tree: ``$STAGE`` is its root, and a file whose path is ``/etc/x`` is staged
at ``$STAGE/etc/x``. Activation runs after every file is in its place.

Apps other than ``hosts`` add to a host's configuration through the registries at the bottom,
so the deploy engine and the renderers never import them: whole units of files (the WKD tree of
``keys``, for instance), and settings for a program whose file a ``hosts`` renderer writes
(``zones`` adds the DKIM milter to Postfix's ``main.cf``).
"""

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gateway.validators import first_control_character


class RenderError(ValueError):
    """The data cannot be turned into a valid file; the message says what to fix."""


@dataclass(frozen=True)
class File:
    """One rendered file: where it goes on the host, its bytes, mode and owner."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root:root"
    secret: bool = False  # holds a password or key: never shown in a diff

    def __post_init__(self):
        path = PurePosixPath(self.path)
        if not path.is_absolute() or ".." in path.parts or first_control_character(self.path):
            raise RenderError(f"{self.path!r} is not a clean absolute path.")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def text(self) -> str | None:
        """The content as text, or None for a binary file (an OpenPGP key)."""
        try:
            return self.content.decode()
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class Unit:
    """Files that are checked and activated together, usually one service's configuration."""

    name: str
    files: tuple[File, ...]
    checks: tuple[str, ...] = ()
    activate: tuple[str, ...] = ()
    instructions: str = ""  # steps only a person can do (e.g. the Proton Bridge's first login)

    def record(self) -> dict:
        """The unit as a deployment stores it (JSON): its files by path, since their contents
        are stored beside it, one row per file."""
        return {
            "name": self.name,
            "paths": [file.path for file in self.files],
            "checks": list(self.checks),
            "activate": list(self.activate),
            "instructions": self.instructions,
        }

    @classmethod
    def from_record(cls, record: dict, files: Mapping[str, File]) -> "Unit":
        """The unit ``record`` stored, with its files from ``files`` (by path)."""
        return cls(
            name=record["name"],
            files=tuple(files[path] for path in record["paths"]),
            checks=tuple(record["checks"]),
            activate=tuple(record["activate"]),
            # Deployments recorded before units kept their instructions have none.
            instructions=record.get("instructions", ""),
        )


@dataclass(frozen=True)
class Bundle:
    """Everything one host receives."""

    host: str
    units: tuple[Unit, ...] = field(default=())

    def __post_init__(self):
        paths = [file.path for unit in self.units for file in unit.files]
        duplicates = sorted({path for path in paths if paths.count(path) > 1})
        if duplicates:
            raise RenderError(f"Two units of {self.host} render {', '.join(duplicates)}.")

    @property
    def files(self) -> list[File]:
        return sorted((file for unit in self.units for file in unit.files), key=_by_path)

    def file(self, path: str) -> File:
        for unit in self.units:
            for candidate in unit.files:
                if candidate.path == path:
                    return candidate
        raise KeyError(path)

    def unit(self, name: str) -> Unit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)

    def write_to(self, root: Path) -> list[Path]:
        """Write every file under ``root`` at its absolute path, as a staging tree."""
        written = []
        for file in self.files:
            target = root / file.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
            os.chmod(target, file.mode)
            written.append(target)
        return written


def _by_path(file: File) -> str:
    return file.path


Contributor = Callable[[object], Iterable[Unit]]
_contributors: list[Contributor] = []


def contributor(function: Contributor) -> Contributor:
    """Register a function that adds units to a host's bundle; it receives the render context
    of ``hosts.render`` and returns the units that host should get (often none)."""
    if function not in _contributors:
        _contributors.append(function)
    return function


def contributions(context) -> list[Unit]:
    return [unit for function in _contributors for unit in function(context)]


SettingsContributor = Callable[[object], Iterable[tuple[str, str]]]
_settings_contributors: dict[str, list[SettingsContributor]] = {}


def settings_contributor(program: str, function: SettingsContributor) -> SettingsContributor:
    """Register a function that adds settings to a file another app renders, named by
    ``program`` (a constant of that renderer, e.g. ``hosts.render.postfix.MAIN_CF``).

    Some configuration cannot be a unit of its own: Postfix reads its milters from ``main.cf``,
    which ``hosts.render.postfix`` writes. The function receives the render context and returns
    ``(name, value)`` pairs (often none); the renderer writes them with its own line writer, so
    they are checked as every other value. A contributed setting only adds: a name the renderer
    or another contributor already sets is refused (``contributed_settings``), so no app can
    quietly loosen, say, Postfix's relay restrictions."""
    functions = _settings_contributors.setdefault(program, [])
    if function not in functions:
        functions.append(function)
    return function


def contributed_settings(
    program: str, context, *, taken: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The settings every contributor adds to ``program`` for this context; ``taken`` are the
    names the renderer sets itself."""
    settings = [
        (name, value)
        for function in _settings_contributors.get(program, ())
        for name, value in function(context)
    ]
    names = [name for name, _ in settings]
    clashes = sorted({name for name in names if names.count(name) > 1} | (set(names) & set(taken)))
    if clashes:
        raise RenderError(f"Two parts of Mailgate set {', '.join(clashes)} in {program}.")
    return settings
