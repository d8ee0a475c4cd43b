"""The pipeline's commands: plan, apply (of a fresh or a saved plan), show, drift. Each parses
its options, calls the application layer (planning, session) and renders; the terminal side
(progress, prompts, warnings) is the console's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconcile.cli.options import (
    AS_JSON,
    COMPACT,
    DEFAULT_MANIFESTS,
    EXCLUDE,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    PLAN_FORMAT,
    PROVIDERS,
    TARGET,
    Command,
    FileOrObject,
    Finite,
    Run,
    common,
    load_manifests,
    plan_format,
    reports_outward,
)
from reconcile.console import (
    ProgressLine,
    TerminalApplyIO,
    echo_error,
    run_command,
    use_color,
    warn,
)
from reconcile.files import write_atomically
from reconcile.heap import outlive_command

if TYPE_CHECKING:
    from reconcile.manifest import Manifest
    from reconcile.outward import Outward
    from reconcile.plan import Plan
    from reconcile.planning import Listing, Selection
    from reconcile.wiring import Options


@click.command(cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "-o",
    "--out",
    type=FileOrObject(exists=False),
    help="Save the plan as JSON, for `reconcile apply FILE`: a file, or an object "
    "s3://BUCKET/KEY on the [state] table's store.",
)
@PLAN_FORMAT
@AS_JSON
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan deletes anything.")
@COMPACT
@click.option(
    "--base",
    metavar="PATH|REF",
    help="Also plan the same listing against the manifests before the change (a folder, or a "
    "git ref such as origin/main) and label each delete: caused by this change, or already "
    "undeclared before it.",
)
@TARGET
@EXCLUDE
@PROVIDERS
@common
@reports_outward("plan")
def plan(
    path: Path,
    out: Path | str | None,
    fmt: str | None,
    as_json: bool,
    detailed_exitcode: bool,
    compact: bool,
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    provider_globs: tuple[str, ...],
    base: str | None,
    run: Run,
    outward: Outward,
) -> int:
    """Show what apply would delete, and why.

    Lists every provider of the manifests, compares live state with what is declared and prints
    one line per object to delete, blocked, kept or drifted. Nothing is changed.

    \b
    Examples:
      reconcile plan examples/demo
      reconcile plan manifests/ -o plan.json
      reconcile plan manifests/ --detailed-exitcode   # exit 2 when something would be deleted
      reconcile plan manifests/ --json | jq .summary
      reconcile plan manifests/ --format markdown > plan.md   # for a pull-request comment
    """
    from reconcile.planning import attributed, make_plan
    from reconcile.render.formats import plan_pieces

    fmt = plan_format(fmt, as_json)
    manifest = load_manifests(path, insecure=run.insecure)
    options = run.options(path)
    _warn_unfinished(manifest, options)
    listing = _list(manifest, options, run.quiet, provider_globs)
    result = make_plan(
        manifest, listing.snapshots, path, options, targets=targets, excludes=excludes
    )
    if base is not None:
        result = attributed(result, base, path, listing.snapshots, options, insecure=run.insecure)
    result = listing.recorded_in(result)
    outlive_command(listing, result)
    outward.tell_plan(result)
    if out is not None and listing.failed:
        echo_error(
            f"the plan was not saved to {out}: it lacks the providers that could not be listed, "
            "and would delete in the others as if they were all there (fix them, or choose "
            "providers with --provider)"
        )
        out = None
    if isinstance(out, str):
        from reconcile.session import save_plan_object

        save_plan_object(manifest, options, out, result.to_json().encode("utf-8"))
    elif out is not None:
        write_atomically(out, result.json_chunks())
    for piece in plan_pieces(result, fmt, color=run.color, compact=compact):
        click.echo(piece, nl=False)
    if fmt == "text" and out is not None:
        click.echo(f"\nSaved the plan to {out} (digest {result.plan_digest}).")
        click.echo(f"To delete exactly this, run: reconcile apply {out}")
    if listing.failed:
        return EXIT_ERROR
    if detailed_exitcode and result.summary.delete:
        return EXIT_CHANGES
    return EXIT_OK


@click.command(cls=Command)
@click.argument("path", type=FileOrObject(exists=True), default=DEFAULT_MANIFESTS)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--max-deletes",
    type=click.IntRange(0),
    help="Refuse a plan that deletes more than N objects per provider (overrides the policy).",
)
@click.option(
    "--expect-digest", metavar="DIGEST", help="Refuse unless the plan's digest is exactly this."
)
@click.option(
    "--lock-timeout",
    type=Finite(0),
    default=0,
    metavar="SECONDS",
    help="Wait up to this long for a lock another apply holds, instead of refusing at once "
    "(for applies queued in a pipeline).",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="When some providers cannot be listed, apply the others (and name those skipped; "
    "exit 3). Without it, nothing is deleted anywhere.",
)
@TARGET
@EXCLUDE
@PROVIDERS
@click.option(
    "--manifests",
    "manifest_override",
    type=click.Path(exists=True, path_type=Path),
    help="With a plan file: the manifests to check it against "
    "[default: the path the plan was made from].",
)
@common
@reports_outward("apply")
def apply(
    path: Path | str,
    auto_approve: bool,
    max_deletes: int | None,
    expect_digest: str | None,
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    provider_globs: tuple[str, ...],
    keep_going: bool,
    lock_timeout: float,
    manifest_override: Path | None,
    run: Run,
    outward: Outward,
) -> int:
    """Delete what the plan deletes, after confirmation or from a saved plan.

    PATH is a manifest file or folder (a plan is made and shown, then confirmed), or a plan file
    saved by `reconcile plan -o` (applying it counts as approval; it is refused if anything it
    deletes changed since).

    \b
    Examples:
      reconcile apply examples/demo
      reconcile apply manifests/ --auto-approve
      reconcile plan manifests/ -o plan.json && reconcile apply plan.json
      reconcile apply plan.json --expect-digest sha256:...
    """
    from reconcile.planning import Selection, saved_plan
    from reconcile.session import ApplyRequest, apply_plan

    selection = Selection(provider_globs, targets, excludes, keep_going)
    saved, manifest_path = saved_plan(
        path, selection, manifest_override, run.options, warn, insecure=run.insecure
    )
    manifest = load_manifests(manifest_path, insecure=run.insecure)
    options = run.options(manifest_path)
    _warn_unfinished(manifest, options)
    io = TerminalApplyIO(run.color, ProgressLine(run.quiet), auto_approve, manifest)
    request = ApplyRequest(
        manifest=manifest,
        manifest_path=str(manifest_path),
        options=options,
        saved=saved is not None,
        expect_digest=expect_digest,
        max_deletes=max_deletes,
        lock_timeout=lock_timeout,
    )
    the_plan, skipped = saved, [item.provider for item in saved.unlisted] if saved else []
    if the_plan is None:
        the_plan, skipped = _fresh_plan(manifest, options, selection, manifest_path, run.quiet)
    # apply_plan takes the lock of each provider scope it deletes in, from the state store.
    outward.tell_plan(the_plan)
    outward.changed = False
    result = apply_plan(the_plan, request, io)
    outlive_command(the_plan, result)
    # Providers skipped by --keep-going make the apply partial, whatever the others did.
    partial = EXIT_PARTIAL if skipped else EXIT_OK
    if result is None:
        return partial
    outward.tell_apply(result)
    from reconcile.render.text import render_apply_result

    try:
        click.echo(render_apply_result(result, len(the_plan.deletes())))
    except OSError as error:  # e.g. a full disk: the deletes happened all the same
        echo_error(
            f"the apply's summary could not be written to standard output "
            f"({error.strerror or error}); `reconcile journal --apply-id {result.apply_id}` "
            "shows what it did"
        )
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if result.with_status("failed", "unknown") else partial


def _listed(
    manifest: Manifest, options: Options, quiet: bool, provider_globs: Sequence[str]
) -> Listing:
    """Every selected provider listed, with the progress display on the terminal."""
    from reconcile.planning import list_providers

    progress = ProgressLine(quiet)
    try:
        return run_command(list_providers(manifest, options, progress, provider_globs))
    finally:
        progress.clear()


def _fresh_plan(
    manifest: Manifest, options: Options, selection: Selection, path: Path, quiet: bool
) -> tuple[Plan, list[str]]:
    """Apply's plan made now, and the providers --keep-going skips. The listing is dropped on
    return: held through the deletes (beside the applier's re-listing) it was 100 MB more at
    100k versions."""
    from reconcile.model import printable
    from reconcile.planning import fresh_plan

    listing = _listed(manifest, options, quiet, selection.provider_globs)
    plan = fresh_plan(manifest, listing, selection, path, options)
    for line in listing.failure_lines():
        echo_error(line)
    skipped = list(listing.failed)
    if skipped:
        names = ", ".join(f'"{printable(name)}"' for name in skipped)
        warn(f"--keep-going: skipping {names}, which could not be listed; applying the others")
    return plan, skipped


def _list(
    manifest: Manifest, options: Options, quiet: bool, provider_globs: Sequence[str]
) -> Listing:
    """For plan and drift: the providers listed, those that failed said on stderr (the command
    goes on with the others, and exits 1 at its end)."""
    listing = _listed(manifest, options, quiet, provider_globs)
    listing.check_any_listed()
    for line in listing.failure_lines():
        echo_error(line)
    return listing


def _warn_unfinished(manifest: Manifest, options: Options) -> None:
    from reconcile.session import unfinished_apply

    said = unfinished_apply(manifest, options, warn)
    if said is not None:
        warn(said)


@click.command(cls=Command)
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@PLAN_FORMAT
@AS_JSON
@click.option("--no-color", is_flag=True, help="Never colour the output.")
@COMPACT
def show(plan_file: Path, fmt: str | None, as_json: bool, no_color: bool, compact: bool) -> int:
    """Show a saved plan file.

    \b
    Examples:
      reconcile show plan.json
      reconcile show plan.json --format markdown   # for the pull request that approves it
    """
    from reconcile.planning import read_plan_file
    from reconcile.render.formats import plan_pieces

    fmt = plan_format(fmt, as_json)
    saved = read_plan_file(plan_file)
    color = fmt == "text" and use_color(no_color)
    for piece in plan_pieces(saved, fmt, color=color, compact=compact):
        click.echo(piece, nl=False)
    if fmt == "text":
        click.echo(f"Plan digest: {saved.plan_digest}")
    return EXIT_OK


DRIFT_FORMATS = ("text", "json", "markdown", "html")


@click.command(cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(DRIFT_FORMATS),
    default="text",
    show_default=True,
    help="json for machines, markdown for a pull request or $GITHUB_STEP_SUMMARY, "
    "html for a self-contained page.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE (replacing it) instead of standard output.",
)
@PROVIDERS
@common
@reports_outward("drift")
def drift(
    path: Path,
    fmt: str,
    output: Path | None,
    provider_globs: tuple[str, ...],
    run: Run,
    outward: Outward,
) -> int:
    """Report how far live state has drifted from the manifests. Read-only.

    Sorts every live object in scope into in sync, changed (declared attributes differ),
    unmanaged (apply would delete it), blocked (would be deleted, but in use or protected),
    ambiguous or kept (by policy), counts declarations that are missing, and gives the share of
    live objects the manifests declare (coverage). Never deletes, never takes the apply lock.
    Exit 0 when in sync, 2 when drifted, 1 on error.

    \b
    Examples:
      reconcile drift examples/demo
      reconcile drift manifests/ --format markdown >> "$GITHUB_STEP_SUMMARY"
      reconcile drift manifests/ --format html --output drift.html
      reconcile drift manifests/ --format json | jq .total.coverage
    """
    from reconcile.planning import drift_report
    from reconcile.render.formats import drift_as

    manifest = load_manifests(path, insecure=run.insecure)
    listing = _list(manifest, run.options(path), run.quiet, provider_globs)
    plan, report = drift_report(manifest, listing, path, run.options(path))
    outlive_command(listing, plan, report)
    outward.tell_drift(report)
    rendered = drift_as(report, fmt, plan, color=run.color and output is None)
    if output is None:
        click.echo(rendered, nl=False)
    else:
        write_atomically(output, rendered)
        total = report.total
        state = f"{total.drifted} drifted" if report.drifted else "in sync"
        click.echo(
            f"Wrote the drift report ({fmt}) to {output}: {state}, "
            f"{total.declared} of {total.live} live objects declared."
        )
    if listing.failed:
        return EXIT_ERROR
    return EXIT_CHANGES if report.drifted else EXIT_OK
