"""Where adoption reads a host's files: a copy of its ``/etc`` and ``/opt/mailu`` on this machine
(``--from DIR``), or the host itself over SSH, read-only (the deploy engine's transport). Lookup
tables in ``hash:`` or ``lmdb:`` files are read with the real Postfix's ``postmap``, here on the
copy or there on the host."""

import hashlib
import subprocess
from pathlib import Path, PurePosixPath

from gateway.bundle import Bundle
from gateway.writers import shell_quote
from hosts.models import Host
from hosts.plan import Plan, make_plan, plan_from_survey, survey_paths
from hosts.render import mailu
from hosts.transport import RemoteResult, Session, TransportError

POSTMAP = "/usr/sbin/postmap"
# The file beside a table that holds its database, by map type (postmap(1)): postmap on a table
# without it is a fatal error, and Postfix sleeps a second before it exits on one.
DATABASE_SUFFIXES = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}


def _database_of(table: str) -> str | None:
    """The database file a ``type:path`` table is read from, if its type keeps one."""
    kind, _, path = table.partition(":")
    suffix = DATABASE_SUFFIXES.get(kind)
    return path + suffix if suffix else None


FIND_DEPTH = 4  # /var/vmail/<domain>/<user>/sieve/<script>
# The database client, its credentials on standard input (never in a command line): hosts.adopt.sql.
MYSQL = ("mysql", "--defaults-extra-file=/dev/stdin", "--batch", "--connect-timeout=10", "-e")


class LocalTree:
    """A copy of the host's root folder (at least ``etc/`` and ``opt/mailu/``) under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __str__(self) -> str:
        return str(self.root)

    def local(self, path: str) -> Path:
        return self.root / PurePosixPath(path).relative_to("/")

    def read(self, path: str) -> bytes | None:
        try:
            return self.local(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def names(self, folder: str) -> list[str]:
        where = self.local(folder)
        return sorted(child.name for child in where.iterdir()) if where.is_dir() else []

    def find(self, folder: str, patterns: tuple[str, ...]) -> list[str]:
        """The host's paths of the files under ``folder`` (four levels down at most) whose
        names match one of ``patterns``."""
        where = self.local(folder)
        if not where.is_dir():
            return []
        found = {
            path
            for pattern in patterns
            for path in where.rglob(pattern)
            if path.is_file() and len(path.relative_to(where).parts) <= FIND_DEPTH
        }
        return sorted(f"/{path.relative_to(self.root)}" for path in found)

    def postmap(self, *args: str, table: str, stdin: str = "") -> str:
        """``postmap ARGS TYPE:PATH`` on the copy of the table (``table`` is ``type:path``)."""
        kind, _, path = table.partition(":")
        database = _database_of(table)
        if database and not self.local(database).exists():
            raise OSError(f"{table}: its database {database} is missing")
        command = [POSTMAP, *args, f"{kind}:{self.local(path)}"]
        result = subprocess.run(  # noqa: S603 (postmap, a path under the copy)
            command, input=stdin, capture_output=True, text=True, check=False
        )
        if result.returncode not in (0, 1) or "fatal:" in result.stderr:  # 1: a key not found
            raise OSError(f"{' '.join(command)}: {result.stderr.strip()}")
        return result.stdout

    def mailu_export(self) -> str | None:
        return None  # a copy of the files holds no database: give --mailu-export

    def mysql(self, options: str, statement: str) -> str:
        """``statement``'s output from the database client on this machine (``options``: a
        ``[client]`` option file), which must reach the host's database itself."""
        result = subprocess.run(  # noqa: S603 (the client, the host's query as one argument)
            [*MYSQL, statement], input=options, capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise OSError(
                f"the mysql client on this machine, for the copy {self}, could not read it "
                f"({result.stderr.strip()}): --from DIR reaches only a database this machine "
                "can reach; adopt over SSH to read it on the host"
            )
        return result.stdout

    def plan(self, host: Host, bundle: Bundle) -> Plan:
        """The plan against the copy, as if it were the host: the same diffs and removals."""
        held = {path: self.read(path) for path in survey_paths(host, bundle)}
        survey = "".join(
            f"{hashlib.sha256(content).hexdigest()}  {path}\n"
            for path, content in held.items()
            if content is not None
        )
        return plan_from_survey(host, bundle, survey + "#deployments\n", self)

    def get(self, path: str) -> bytes:
        """The plan's read of a file that drifted (``Session.get``)."""
        return self.read(path) or b""

    def run(self, command: str) -> RemoteResult:
        """The plan's question to a program on the host (``Session.run``): a copy runs none."""
        return RemoteResult(127, "", f"{self} is a copy of the files: nothing runs there")


class RemoteTree:
    """The host itself, over an open ``Session``; nothing is written there."""

    def __init__(self, session: Session):
        self.session = session

    def __str__(self) -> str:
        return str(self.session.host)

    def read(self, path: str) -> bytes | None:
        try:
            return self.session.get(path)
        except TransportError:
            return None

    def names(self, folder: str) -> list[str]:
        # Only a folder's names: ``ls`` of a file prints the file, as if it held itself.
        quoted = shell_quote(folder)
        listing = self.session.run(f"if [ -d {quoted} ]; then ls -1 {quoted}; fi").stdout
        return sorted(name for name in listing.splitlines() if name)

    def find(self, folder: str, patterns: tuple[str, ...]) -> list[str]:
        names = " -o ".join(f"-name {shell_quote(pattern)}" for pattern in patterns)
        command = (
            f"find {shell_quote(folder)} -maxdepth {FIND_DEPTH} \\( -type f -o -type l \\) "
            f"\\( {names} \\) "
            "2>/dev/null; true"
        )
        return sorted(line for line in self.session.run(command).stdout.splitlines() if line)

    def postmap(self, *args: str, table: str, stdin: str = "") -> str:
        command = " ".join(shell_quote(arg) for arg in ["postmap", *args, table])
        script = f"{command}; test $? -le 1"
        if database := _database_of(table):
            missing = shell_quote(f"its database {database} is missing")
            found = f"[ -e {shell_quote(database)} ]"
            script = f"if {found}; then {script}; else echo {missing} >&2; false; fi"
        result = self.session.run(script, stdin=stdin.encode())
        if result.status or "fatal:" in result.stderr:
            raise OSError(f"{command} on {self}: {result.stderr.strip()}")
        return result.stdout

    def mailu_export(self) -> str | None:
        if self.read(mailu.COMPOSE_PATH) is None:
            return None
        result = self.session.run(mailu.export_command())
        if result.status:
            raise OSError(f"Mailu's config-export on {self}: {result.stderr.strip()}")
        return result.stdout

    def mysql(self, options: str, statement: str) -> str:
        command = " ".join(shell_quote(arg) for arg in [*MYSQL, statement])
        result = self.session.run(command, stdin=options.encode())
        if result.status:
            raise OSError(f"the mysql client on {self}: {result.stderr.strip()}")
        return result.stdout

    def plan(self, host: Host, bundle: Bundle) -> Plan:
        return make_plan(host, bundle, self.session)
