"""Pure renderers, one module per format: a `Plan` or a `DriftReport` to text (`text`), JSON
(`json`), markdown for pull-request comments (`markdown`) and a self-contained page (`html`)."""


def percent(share: float) -> str:
    """0.16129 -> "16.1%"; never rounds a share below 1 up to "100%"."""
    value = share * 100
    if share < 1 and value > 99.9:
        return "99.9%"
    return f"{value:.1f}%"


def with_versions(count: int) -> str:
    """What a model line takes along: "with 1 version", "with 5 versions"."""
    return f"with {count} version" if count == 1 else f"with {count} versions"


def count(number: int, noun: str) -> str:
    """1234, "version" -> "1,234 versions"; 1 -> "1 version"."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


class DeleteTally:
    """Deletes (or a drift category's items) counted by kind, objects as `max_deletes` counts
    them (a whole-model delete is its model and each of its versions): `models` whole-model
    deletes taking `along` versions with them, and `versions` deletes of single versions."""

    def __init__(self) -> None:
        self.models = 0
        self.along = 0
        self.versions = 0

    def add(self, version_ids: int, *, model: bool) -> None:
        if model:
            self.models += 1
            self.along += version_ids
        else:
            self.versions += 1

    @property
    def deletes(self) -> int:
        return self.models + self.versions

    @property
    def objects(self) -> int:
        return self.models + self.along + self.versions

    def words(self) -> str:
        """ "295 models with 1,770 versions, 220 versions; 1,990 objects"."""
        parts = []
        if self.models:
            along = f" with {count(self.along, 'version')}" if self.along else ""
            parts.append(f"{count(self.models, 'model')}{along}")
        if self.versions or not parts:
            parts.append(count(self.versions, "version"))
        return f"{', '.join(parts)}; {count(self.objects, 'object')}"
