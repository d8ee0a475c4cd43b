"""One manifest file as read: its lines, what it declares, and errors that point into it."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

from reconcile.errors import ManifestError
from reconcile.manifest.scanner import Loc, line_of, toml_path
from reconcile.manifest.specs import FabricProvider, Location, ModelSpec, Policy, QianfanProvider


@dataclass
class FileManifest:
    """What one file declares, validated on its own (references across files are checked later)."""

    file: str
    lines: dict[Loc, int]
    #: Plain http:// to hosts that are not loopback is allowed (--insecure).
    insecure: bool = False
    providers: dict[str, FabricProvider | QianfanProvider] = dataclass_field(default_factory=dict)
    policy: Policy | None = None
    models: list[ModelSpec] = dataclass_field(default_factory=list)

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
