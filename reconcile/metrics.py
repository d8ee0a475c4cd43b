"""`--metrics-file FILE`: a run's numbers in Prometheus text format, for node_exporter's textfile
collector (`--collector.textfile.directory`; the collector reads files named `*.prom`).

Every series carries the `command` label, so the files of a scheduled `drift` and of a pipeline's
`apply` can sit in one directory without clashing (give each its own file name):

- `reconcile_objects{command, provider, category}`: objects of the last run per provider and
  category (`delete`, `blocked`, `kept`, `drift`; for `apply` also `deleted`, `failed`), zeros
  included, so a dashboard sees 0 rather than no data;
- `reconcile_last_run_timestamp_seconds{command}`, `reconcile_run_duration_seconds{command}`,
  `reconcile_exit_code{command}`, `reconcile_last_run_success{command}` (1 or 0);
- `reconcile_last_success_timestamp_seconds{command}`: when a run of the command last succeeded.
  A failed run carries the previous file's value forward (absent if none ever succeeded), so
  `time() - reconcile_last_success_timestamp_seconds > 86400` alerts on a day without a good run.

The file is replaced atomically (written beside it under a dot-name the collector skips, flushed,
then renamed over it), so the collector never reads half a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.events import CATEGORIES, Command, RunEvent
from reconcile.files import write_atomically

#: The categories every provider gets a series for (zero when empty), per command.
_SHOWN: dict[str, tuple[str, ...]] = {
    "plan": ("delete", "blocked", "kept", "drift"),
    "drift": ("delete", "blocked", "kept", "drift"),
    "apply": CATEGORIES,
}

#: Mode of the written file: node_exporter usually runs as another user and must read it.
FILE_MODE = 0o644

LAST_SUCCESS = "reconcile_last_success_timestamp_seconds"


class MetricsError(ReconcileError):
    """The metrics file cannot be written where `--metrics-file` says."""


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


def _family(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return lines


def render_metrics(event: RunEvent, previous_success: float | None = None) -> str:
    """The file's text for `event`. `previous_success`: the last success time to carry forward
    when `event` failed. Pure."""
    command = _labels([("command", event.command)])
    shown = _SHOWN[event.command]
    objects = []
    for provider, per_category in event.counts.items():
        extra = tuple(category for category in per_category if category not in shown)
        for category in shown + extra:
            labels = _labels(
                [("command", event.command), ("provider", provider), ("category", category)]
            )
            objects.append((labels, float(per_category.get(category, 0))))
    last_success = event.finished_at if event.succeeded else previous_success
    lines = _family(
        "reconcile_objects", "Objects of the last run per provider and category.", objects
    )
    lines += _family(
        "reconcile_last_run_timestamp_seconds",
        "When the last run finished, as a Unix time.",
        [(command, event.finished_at)],
    )
    lines += _family(
        LAST_SUCCESS,
        "When a run last finished successfully (exit code 0 or 2), as a Unix time.",
        [(command, last_success)] if last_success is not None else [],
    )
    lines += _family(
        "reconcile_run_duration_seconds", "How long the last run took.", [(command, event.duration)]
    )
    lines += _family(
        "reconcile_exit_code", "The last run's exit code.", [(command, event.exit_code)]
    )
    lines += _family(
        "reconcile_last_run_success",
        "1 if the last run succeeded (exit code 0 or 2), else 0.",
        [(command, 1 if event.succeeded else 0)],
    )
    return "\n".join(lines) + "\n"


def previous_success(text: str, command: Command) -> float | None:
    """The last success time of `command` in a metrics file written before, if any. Pure."""
    labels = re.escape(_labels([("command", command)]))
    found = re.search(rf"^{LAST_SUCCESS}{labels} (\S+)$", text, re.MULTILINE)
    if found is None:
        return None
    try:
        return float(found.group(1))
    except ValueError:
        return None


def check_metrics_path(path: Path) -> None:
    """Refuse, before a run, a `--metrics-file` that could not be written after it."""
    directory = path.parent
    hint = "give a file in a directory that exists and that you can write to"
    if path.is_dir():
        raise MetricsError(f"--metrics-file {path}: is a directory", hint=hint)
    if not directory.is_dir():
        raise MetricsError(f"--metrics-file {path}: {directory} is not a directory", hint=hint)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise MetricsError(f"--metrics-file {path}: cannot write in {directory}", hint=hint)


def write_metrics_file(path: Path, event: RunEvent) -> str | None:
    """Write `event`'s metrics to `path`. Returns a warning if it could not (a run that has
    deleted is not made to fail by its metrics), else None."""
    previous = None
    if not event.succeeded:
        try:
            previous = previous_success(path.read_text(encoding="utf-8"), event.command)
        except (OSError, UnicodeDecodeError):
            previous = None
    try:
        write_atomically(path, render_metrics(event, previous), mode=FILE_MODE)
    except OSError as exc:
        return f"metrics file {path} not written: {exc.strerror or exc}"
    return None
