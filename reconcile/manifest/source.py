"""One manifest file as read: its lines, what it declares, and errors that point into it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from reconcile.errors import ManifestError, ReconcileError
from reconcile.manifest.scanner import Loc, line_of, toml_path
from reconcile.manifest.specs import (
    FabricProvider,
    Location,
    ModelSpec,
    Policy,
    QianfanProvider,
    StateTable,
)


@dataclass
class FileManifest:
    """What one file declares, validated on its own (references across files are checked later)."""

    file: str
    lines: dict[Loc, int]
    #: Plain http:// to hosts that are not loopback is allowed (--insecure).
    insecure: bool = False
    providers: dict[str, FabricProvider | QianfanProvider] = dataclass_field(default_factory=dict)
    policy: Policy | None = None
    state: StateTable | None = None
    models: list[ModelSpec] = dataclass_field(default_factory=list)
    #: Every [providers.NAME] table the file declares, valid or not, with its type when known:
    #: a model that names one is not reported as naming no provider.
    declared: dict[str, str | None] = dataclass_field(default_factory=dict)
    #: Provider templates (`workspaces = [...]`): the table's name -> (provider, workspace id) of
    #: each provider scope it stands for.
    templates: dict[str, list[tuple[str, str]]] = dataclass_field(default_factory=dict)
    #: False when the file could not be read or parsed (what it declares is unknown).
    parsed: bool = True
    #: What is wrong with the file, in groups: the problems of one table (its first problem
    #: first), or one problem alone. Groups are reported in the order of their first line.
    problems: list[list[ManifestError]] = dataclass_field(default_factory=list)

    def fail(self, *problems: ManifestError) -> None:
        if problems:
            self.problems.append(list(problems))

    def in_order(self) -> list[ManifestError]:
        groups = sorted(self.problems, key=lambda group: group[0].line or 0)
        return [problem for group in groups for problem in group]

    def line(self, loc: Loc) -> int | None:
        return line_of(self.lines, loc)

    def location(self, loc: Loc) -> Location:
        return Location(file=self.file, line=self.line(loc) or 1)

    def error(
        self, loc: Loc, message: str, *, hint: str | None = None, at: Loc | None = None
    ) -> ManifestError:
        """An error about `loc` (its TOML path starts the message), placed at the line of `at`."""
        path = toml_path(loc)
        return ManifestError(
            f"{path}: {message}" if path else message,
            file=self.file,
            line=self.line(loc if at is None else at),
            hint=hint,
        )


class ManifestErrors(ManifestError):
    """Every problem found in the manifests (one or more), so that one run reports them all.

    It reads as its first problem (its message, file, line and hint), then the others; the CLI
    prints the first after "Error: ", so each of the others starts a line of its own the same way.
    """

    def __init__(self, problems: Sequence[ManifestError]) -> None:
        first = problems[0]
        # Not ManifestError.__init__: the first problem's message already names its file and line.
        ReconcileError.__init__(self, first.message, hint=first.hint)
        self.file = first.file
        self.line = first.line
        self.problems = tuple(problems)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        files = len({problem.file for problem in self.problems})
        return "\nError: ".join(str(problem) for problem in self.problems) + (
            f"\n{len(self.problems)} errors in {files} file{'s' if files > 1 else ''}: fix them "
            "all, then run reconcile validate again"
        )
