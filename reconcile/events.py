"""What a finished run reports outward: one record, for notifications and the metrics file alike.

The CLI builds a `RunEvent` once a `plan`, `apply` or `drift` has finished (or failed) and hands the
same record to `notify.send_notifications` and `metrics.write_metrics_file`, so a chat message and
a dashboard never disagree about what happened. Pure data: the times come from the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Command = Literal["plan", "apply", "drift"]
Outcome = Literal["failure", "changes", "no_changes"]

#: The categories an object is counted in, in the order they are shown: what a plan or drift
#: report would delete, leaves blocked (in use) or kept (protected, retention), what drifted, and
#: what an apply deleted or failed to delete.
CATEGORIES = ("delete", "blocked", "kept", "drift", "deleted", "failed")

#: Exit codes of a run that finished as designed (0: nothing to do; 2: changes or drift found,
#: as `--detailed-exitcode` and `drift` report them). Any other code is a failure.
SUCCESS_EXIT_CODES = frozenset({0, 2})


@dataclass(frozen=True)
class RunEvent:
    """One finished run of `plan`, `apply` or `drift`."""

    #: Which command ran.
    command: Command
    #: Objects per provider (the manifest's provider names, in the manifest's order) and
    #: category (`CATEGORIES`); a category with no objects may be left out.
    counts: Mapping[str, Mapping[str, int]]
    #: The process's exit code (see DESIGN.md: 0, 1, 2, 3, 130).
    exit_code: int
    #: One line a person reads first ("Plan: 515 to delete, 3 blocked." or the error).
    summary: str
    #: Whether the run found something to act on (the command's own rule: deletes for `plan`,
    #: anything drifted for `drift`, any delete attempted for `apply`).
    changed: bool
    #: When the run started and finished, as Unix times (seconds).
    started_at: float
    finished_at: float
    #: Where to read more (a CI job, a pull request, a report), if the caller knows.
    link: str | None = None
    #: A few lines of detail, such as the addresses to be deleted ("delete fabric-prod/m/v3");
    #: platform text, escaped by each message format. Long lists are cut by the renderers.
    details: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for provider, per_category in self.counts.items():
            unknown = set(per_category) - set(CATEGORIES)
            if unknown:
                raise ValueError(f"{provider}: unknown categories {sorted(unknown)}")
            if any(count < 0 for count in per_category.values()):
                raise ValueError(f"{provider}: a negative count")

    @property
    def succeeded(self) -> bool:
        return self.exit_code in SUCCESS_EXIT_CODES

    @property
    def outcome(self) -> Outcome:
        if not self.succeeded:
            return "failure"
        return "changes" if self.changed else "no_changes"

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self.counts)

    def totals(self) -> dict[str, int]:
        """Objects per category over every provider, in `CATEGORIES` order, zeros left out."""
        totals = dict.fromkeys(CATEGORIES, 0)
        for per_category in self.counts.values():
            for category, count in per_category.items():
                totals[category] += count
        return {category: count for category, count in totals.items() if count}
