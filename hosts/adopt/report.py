"""What an adoption found: what Mailgate took over, what it did not understand (each with its
file and line, never dropped), what conflicts with rows Mailgate already has, and what it
refused (bad input, which stops the adoption: nothing is written)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Where:
    """A place in the host's files: a path and, where it has one, a line number."""

    path: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True)
class Finding:
    where: Where
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


@dataclass
class Report:
    adopted: list[Finding] = field(default_factory=list)
    not_understood: list[Finding] = field(default_factory=list)
    conflicts: list[Finding] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    routing: list[str] = field(default_factory=list)  # differences in where addresses route

    def adopt(self, where: Where, text: str) -> None:
        self.adopted.append(Finding(where, text))

    def unknown(self, where: Where, text: str) -> None:
        self.not_understood.append(Finding(where, text))

    def conflict(self, where: Where, text: str) -> None:
        self.conflicts.append(Finding(where, text))

    def error(self, where: Where, text: str) -> None:
        self.errors.append(Finding(where, text))

    def sections(self) -> list[tuple[str, list]]:
        """The report's non-empty sections with their titles, in the order they are read."""
        sections = [
            ("Refused (nothing was written)", self.errors),
            ("Adopted", self.adopted),
            ("Not understood, kept in this report (not in Mailgate)", self.not_understood),
            ("Conflicts with rows Mailgate has (kept as they are in Mailgate)", self.conflicts),
            ("Routing differences", self.routing),
        ]
        return [(title, items) for title, items in sections if items]

    def lines(self) -> list[str]:
        """The report as text, section by section."""
        text = []
        for title, items in self.sections():
            text += [f"{title}: {len(items)}", *(f"  {item}" for item in items)]
        return text


class AdoptionRefused(Exception):
    """Bad input: the report lists each fault with its line; nothing was written."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("; ".join(str(error) for error in report.errors))
