"""`reconcile report`: one report from the plan or drift documents of many jobs (a CI matrix).

documents.py   read FILE arguments and globs: plans (digest checked) and drift reports
merge.py       the merged report's records, and the pure merge with its refusals
render.py      the merged report as text, markdown, HTML or JSON
__main__.py    `python -m reconcile.report merge|providers`, a `main(argv) -> int`
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from reconcile.files import write_atomically
from reconcile.manifest import load_manifest
from reconcile.report.documents import read_documents
from reconcile.report.merge import (
    MergedDrift,
    MergedPlan,
    MergedReport,
    ReportError,
    check_covers,
    merge,
)
from reconcile.report.render import RENDERERS

EXIT_OK = 0
EXIT_CHANGES = 2

__all__ = [
    "RENDERERS",
    "MergedDrift",
    "MergedPlan",
    "MergedReport",
    "ReportError",
    "merge",
    "merge_files",
    "read_documents",
]


def merge_files(
    files: Sequence[str],
    fmt: str,
    output: str | None,
    manifests: str | None,
    detailed_exitcode: bool,
    echo: Callable[[str], object],
) -> int:
    """`merge`, for this module's command line and `reconcile report merge` alike: the merged
    report written to `output` (or given to `echo`), and the exit code."""
    report = merge(read_documents(files))
    if manifests is not None:
        manifest = load_manifest(Path(manifests))
        check_covers(report, manifest.digest(), list(manifest.providers))
    rendered = RENDERERS[fmt](report)
    if output is None:
        echo(rendered)
    else:
        try:
            write_atomically(Path(output), rendered)
        except OSError as error:
            raise ReportError(f"{output}: cannot write it: {error.strerror}") from None
        state = "with changes" if report.has_changes else "no changes"
        echo(
            f"Wrote the merged report ({fmt}) of {len(report.sources)} documents and "
            f"{len(report.providers)} providers to {output}: {state}.\n"
        )
    return EXIT_CHANGES if detailed_exitcode and report.has_changes else EXIT_OK
