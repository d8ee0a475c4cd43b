"""The command line: parse, call the pipeline, render, return an exit code.

Still over 450 lines (the architecture issue is open): the click declarations of every command
with their examples, and command bodies not yet moved into the session and planning modules.

Exit codes: 0 success or no changes; 1 error (nothing deleted); 2 changes present (plan with
--detailed-exitcode, drift); 3 apply finished with some deletes failed; 130 interrupted.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconcile import __version__
from reconcile.cli_options import (
    EXCLUDE,
    EXIT_BUG,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    PROVIDERS,
    TARGET,
    FileOrObject,
    Group,
    Run,
    common,
    reports_outward,
    shared_option,
    with_global_options,
)
from reconcile.console import (
    ProgressLine,
    TerminalApplyIO,
    collector_paused,
    echo_error,
    render,
    run_command,
    use_color,
    warn,
)
from reconcile.errors import ReconcileError

if TYPE_CHECKING:  # the heavy modules load only when a command runs, so --help stays fast
    from reconcile.manifest import Manifest
    from reconcile.outward import Outward
    from reconcile.planning import Listing
    from reconcile.wiring import Options

DEFAULT_MANIFESTS = "manifests"
T = TypeVar("T")


# -- the pipeline pieces the commands share ---------------------------------------------------


def _load(path: Path, *, insecure: bool = False) -> Manifest:
    from reconcile.manifest import load_manifest

    return load_manifest(path, insecure=insecure)


def _state_dir(path: Path, state_dir: Path | None) -> Path:
    from reconcile.wiring import default_state_dir

    return state_dir if state_dir is not None else default_state_dir(path)


PLAN_FORMATS = ("text", "json", "markdown")


def _plan_format(fmt: str | None, as_json: bool) -> str:
    """--format, with --json as its older spelling of `--format json`."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} disagree: give one of them")
    return "json" if as_json else fmt or "text"


# -- commands -----------------------------------------------------------------------------------


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RECONCILE"},
)
@click.version_option(__version__, prog_name="reconcile")
@click.option(
    "-C",
    "--chdir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run as if started in DIR (paths, .reconcile and saved plans are read from there).",
)
@click.option(
    "--log-level",
    type=click.Choice(("debug", "info", "warning"), case_sensitive=False),
    envvar="RECONCILE_LOG",
    show_envvar=True,
    help="The debug log: warning (default), info (failed and retried HTTP requests) or debug "
    "(every request, and each signature's canonical request); secrets are always redacted.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
    help="Append the log to FILE instead of stderr.",
)
@with_global_options
def cli(chdir: Path | None, log_level: str | None, log_file: Path | None, **_: Any) -> None:
    """Make LLM model registries match the models declared in TOML manifests.

    Options shared by the commands (--state-dir, --parallelism, --notify, ...) are accepted
    before the command too, and every option can be set from the environment: RECONCILE_<NAME>
    before the command (RECONCILE_PARALLELISM=8), RECONCILE_<COMMAND>_<NAME> for a command's
    own (RECONCILE_PLAN_FORMAT=json); --help shows each one's variable.

    \b
    reconcile validate manifests/         check manifests, no network
    reconcile plan manifests/             list live state and show what would be deleted
    reconcile apply manifests/            delete it, after confirmation
    reconcile drift manifests/            how far live state drifted (read-only)
    reconcile import --provider NAME      write a manifest declaring what is live
    reconcile plan examples/demo          try it on the built-in emulator (no account needed)
    """
    if chdir is not None:
        os.chdir(chdir)
    from reconcile.colour import use_colour

    if use_colour(os.environ, isatty=False, no_color_flag=False):
        # FORCE_COLOR: click strips colour from output that is not a terminal unless told.
        click.get_current_context().color = True
    from reconcile.logs import configure_logging

    # Always: warnings (an emulator seed that changed, say) reach stderr, redacted, by default.
    configure_logging(log_level, log_file)


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "github", "json")),
    default="text",
    help="text for people; github: ::error annotations for GitHub Actions; json: a list.",
)
def validate(path: Path, fmt: str) -> int:
    """Check manifests without touching the network.

    \b
    Examples:
      reconcile validate manifests/
      reconcile validate manifests/prod.toml
      reconcile validate manifests/ --format github   # annotations in a GitHub Actions log
    """
    from reconcile.manifest import manifest_warnings

    if fmt != "text":
        from reconcile import validation

        found = validation.problems(path)
        click.echo(validation.render(found, fmt), nl=False)
        return EXIT_ERROR if any(p.severity == "error" for p in found) else EXIT_OK

    manifest = _load(path)
    for warning in manifest_warnings(manifest):
        click.echo(warning, err=True)
    versions = sum(len(model.versions or ()) for model in manifest.models)
    click.echo(
        f"{path}: valid: {len(manifest.providers)} provider(s), {len(manifest.models)} model(s), "
        f"{versions} declared version(s)."
    )
    return EXIT_OK


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "-o",
    "--out",
    type=FileOrObject(exists=False),
    help="Save the plan as JSON, for `reconcile apply FILE`: a file, or an object "
    "s3://BUCKET/KEY on the [state] table's store.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(PLAN_FORMATS),
    help="text for people (default), json for machines, markdown for a pull-request comment.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan deletes anything.")
@click.option("--compact", is_flag=True, help="Text: one line per object, no reasons.")
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

    fmt = _plan_format(fmt, as_json)
    manifest = _load(path, insecure=run.insecure)
    options = run.options(path)
    _warn_unfinished(manifest, options)
    listing = _list(manifest, options, run.quiet, provider_globs)
    result = make_plan(
        manifest, listing.snapshots, path, options, targets=targets, excludes=excludes
    )
    if base is not None:
        result = attributed(result, base, path, listing.snapshots, options, insecure=run.insecure)
    result = listing.recorded_in(result)
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

        save_plan_object(manifest, run.options(path), out, result.to_json().encode("utf-8"))
    elif out is not None:
        out.write_text(result.to_json(), encoding="utf-8")
    if fmt != "text":
        from reconcile.render.formats import plan_as

        click.echo(plan_as(result, fmt, color=run.color), nl=False)
    else:
        click.echo(render(result, run.color, compact), nl=False)
        if out is not None:
            click.echo(f"\nSaved the plan to {out} (digest {result.plan_digest}).")
            click.echo(f"To delete exactly this, run: reconcile apply {out}")
    if listing.failed:
        return EXIT_ERROR
    if detailed_exitcode and result.summary.delete:
        return EXIT_CHANGES
    return EXIT_OK


@cli.command()
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
    type=click.FloatRange(0),
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
    from reconcile.model import printable
    from reconcile.planning import Selection, fresh_plan, saved_plan
    from reconcile.session import ApplyRequest, apply_plan

    selection = Selection(provider_globs, targets, excludes, keep_going)
    saved, manifest_path = saved_plan(
        path, selection, manifest_override, run.options, warn, insecure=run.insecure
    )
    manifest = _load(manifest_path, insecure=run.insecure)
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
        listing = _listed(manifest, options, run.quiet, provider_globs)
        the_plan = fresh_plan(manifest, listing, selection, manifest_path, options)
        skipped = list(listing.failed)
        for line in listing.failure_lines():
            echo_error(line)
        if skipped:
            names = ", ".join(f'"{printable(name)}"' for name in skipped)
            warn(f"--keep-going: skipping {names}, which could not be listed; applying the others")
    # apply_plan takes the lock of each provider scope it deletes in, from the state store.
    outward.tell_plan(the_plan)
    outward.changed = False
    result = apply_plan(the_plan, request, io)
    # Providers skipped by --keep-going make the apply partial, whatever the others did.
    partial = EXIT_PARTIAL if skipped else EXIT_OK
    if result is None:
        return partial
    outward.tell_apply(result)
    from reconcile.render.text import render_apply_result

    click.echo(render_apply_result(result, len(the_plan.deletes())))
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
        click.echo(f"Warning: {said}", err=True)


@cli.command()
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(PLAN_FORMATS),
    help="text for people (default), json for machines, markdown for a pull-request comment.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--no-color", is_flag=True, help="Never colour the output.")
@click.option("--compact", is_flag=True, help="Text: one line per object, no reasons.")
def show(plan_file: Path, fmt: str | None, as_json: bool, no_color: bool, compact: bool) -> int:
    """Show a saved plan file.

    \b
    Examples:
      reconcile show plan.json
      reconcile show plan.json --format markdown   # for the pull request that approves it
    """
    from reconcile.plan import Plan

    fmt = _plan_format(fmt, as_json)
    saved = Plan.from_json(plan_file.read_text(encoding="utf-8"), source=str(plan_file))
    if fmt != "text":
        from reconcile.render.formats import plan_as

        click.echo(plan_as(saved, fmt), nl=False)
    else:
        click.echo(render(saved, use_color(no_color), compact), nl=False)
        click.echo(f"Plan digest: {saved.plan_digest}")
    return EXIT_OK


DRIFT_FORMATS = ("text", "json", "markdown", "html")


@cli.command()
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
    from reconcile.drift import build_drift_report
    from reconcile.planning import make_plan

    manifest = _load(path, insecure=run.insecure)
    listing = _list(manifest, run.options(path), run.quiet, provider_globs)
    snapshots = listing.snapshots

    with collector_paused():
        # Read-only: an empty "workspace" scope is reported (all unmanaged), not refused.
        plan = make_plan(manifest, snapshots, path, run.options(path), refuse_empty=False)
        report = build_drift_report(plan, manifest, snapshots)
    outward.tell_drift(report)
    from reconcile.render.formats import drift_as

    rendered = drift_as(report, fmt, plan, color=run.color and output is None)
    if output is None:
        click.echo(rendered, nl=False)
    else:
        output.write_text(rendered, encoding="utf-8")
        total = report.total
        state = f"{total.drifted} drifted" if report.drifted else "in sync"
        click.echo(
            f"Wrote the drift report ({fmt}) to {output}: {state}, "
            f"{total.declared} of {total.live} live objects declared."
        )
    if listing.failed:
        return EXIT_ERROR
    return EXIT_CHANGES if report.drifted else EXIT_OK


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "--provider",
    "provider_name",
    required=True,
    metavar="NAME",
    help="The provider to import: a [providers.NAME] table of PATH's manifests.",
)
@click.option("--model", "model_glob", metavar="GLOB", help="Import only models matching GLOB.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifest to FILE [default: standard output].",
)
@click.option("--force", is_flag=True, help="Overwrite FILE when it exists.")
@common
def import_(
    path: Path,
    provider_name: str,
    model_glob: str | None,
    output: Path | None,
    force: bool,
    run: Run,
) -> int:
    """Write a manifest that declares what is live on one provider.

    Lists the provider's workspace and declares every model and version in scope (presets and
    ignored names left out) with its attributes, ids in comments, so that `reconcile plan` right
    after reports no changes. The provider table and the policy are copied from PATH's
    manifests. Read-only; never overwrites a file without --force.

    \b
    Examples:
      reconcile import --provider fabric-prod manifests/ --output adopted/fabric-prod.toml
      reconcile import --provider qianfan --model 'chat-*' manifests/ > chat.toml
    """
    from reconcile.importing import imported_manifest, list_one, refuse_overwrite, write_new

    manifest = _load(path, insecure=run.insecure)
    refuse_overwrite(manifest, provider_name, path, output, force=force)
    progress = ProgressLine(run.quiet)
    try:
        snapshot = run_command(list_one(manifest, provider_name, run.options(path), progress))
    finally:
        progress.clear()
    imported = imported_manifest(manifest, provider_name, snapshot, model_glob, output)
    for note in imported.notes:
        click.echo(f"Note: {note}.", err=True)
    if output is None:
        click.echo(imported.text, nl=False)
        return EXIT_OK
    write_new(output, imported.text, force=force)
    click.echo(
        f"Wrote {imported.models} models and {imported.versions} versions of {provider_name} "
        f"to {output}. Check it with: reconcile plan {output}",
        err=True,
    )
    return EXIT_OK


@cli.command()
def schema() -> int:
    """Print the JSON Schema of a manifest file, for editors.

    \b
    Example:
      reconcile schema > reconcile.schema.json
      # then start a manifest with:  #:schema ./reconcile.schema.json
    """
    import json

    from reconcile.schema import manifest_schema

    click.echo(json.dumps(manifest_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@shared_option("state_dir")
@shared_option("state_url")
@click.option("--apply-id", help="Show every object one apply deleted.")
def journal(path: Path, state_dir: Path | None, state_url: str | None, apply_id: str | None) -> int:
    """List past applies of PATH's manifests and what each deleted.

    The journal is read from the state store of the manifests ([state], --state or
    $RECONCILE_STATE; .reconcile/ beside them by default).

    \b
    Examples:
      reconcile journal examples/demo
      reconcile journal manifests/ --apply-id 3f2a9c1b7d0e
      reconcile journal manifests/ --state s3://team-state/prod
    """
    from reconcile.session import journal_summaries

    store, applies = journal_summaries(
        _load(path), _state_options(path, state_dir, state_url), warn
    )
    if apply_id is not None:
        applies = [entry for entry in applies if entry.apply_id == apply_id]
        if not applies:
            raise ReconcileError(f"no apply with id {apply_id} in {store}")
    if not applies:
        click.echo(f"No applies recorded in {store}.")
        return EXIT_OK
    for entry in applies:
        counts = f"{len(entry.deleted)} deleted, {len(entry.failed)} failed"
        if entry.unknown:
            counts += f", {len(entry.unknown)} unknown"
        click.echo(
            f"{entry.apply_id}  {entry.started}  {counts}, {len(entry.unfinished)} unfinished  "
            f"{entry.status.value}"
        )
        if apply_id is not None:
            for label in ("deleted", "failed", "unknown", "unfinished"):
                for address in getattr(entry, label):
                    click.echo(f"  {label}: {address}")
        elif entry.open:
            click.echo(
                "  deletes sent without a known outcome (check them with plan): "
                + ", ".join(entry.open)
            )
    return EXIT_OK


def _state_options(path: Path, state_dir: Path | None, state_url: str | None) -> Options:
    from reconcile.wiring import Options

    return Options(state_dir=_state_dir(path, state_dir), state_url=state_url)


@cli.command("force-unlock")
@click.argument("lock_id")
@click.option(
    "--manifests",
    "path",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_MANIFESTS),
    show_default=True,
    help="The manifests whose [state] table names the store (when they exist).",
)
@shared_option("state_dir")
@shared_option("state_url")
@click.option(
    "--force",
    is_flag=True,
    help="Release it even though its lease has not run out (never while an apply runs).",
)
def force_unlock(
    lock_id: str, path: Path, state_dir: Path | None, state_url: str | None, force: bool
) -> int:
    """Release a lock left by an apply that is gone (give the id the lock error showed).

    Refuses while the holder's lease runs (or, locally, while its process still runs) unless
    --force is given.

    \b
    Examples:
      reconcile force-unlock 3f2a9c1b7d0e --manifests manifests/
      reconcile force-unlock 3f2a9c1b7d0e --state s3://team-state/prod --force
    """
    from reconcile.session import release_lock

    manifest = _load(path) if path.exists() else None
    store, info = release_lock(
        manifest, _state_options(path, state_dir, state_url), lock_id, force=force
    )
    click.echo(f"Released lock {lock_id} of {info.scope} in {store}.")
    return EXIT_OK


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@PROVIDERS
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects, for a CI matrix.")
def providers(path: Path, provider_globs: tuple[str, ...], as_json: bool) -> int:
    """List the provider scopes of PATH's manifests (no network).

    Each is a unit that plan, apply and drift list, lock and report on their own: a CI matrix
    can run one job per provider (`--provider NAME`) and merge their JSON with
    `reconcile report merge`.

    \b
    Examples:
      reconcile providers manifests/
      reconcile providers manifests/ --json | jq -c 'map(.name)'   # a matrix
    """
    from reconcile.wiring import provider_rows, select_providers

    manifest = _load(path)
    rows = provider_rows(manifest, select_providers(manifest, provider_globs))
    if as_json:
        import json

        click.echo(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    from reconcile.model import printable

    for row in rows:
        where = f"workspace {row['workspace_id']}" if row["workspace_id"] else "account"
        click.echo(
            printable(
                f"{row['name']}  {row['type']}  {where}  scope {row['scope']}  {row['endpoint']}"
            )
        )
    return EXIT_OK


@cli.group()
def report() -> None:
    """Reports over many runs: the plans or drift reports of a CI matrix, merged."""


@report.command("merge")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "markdown", "html", "json")),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@click.option(
    "--manifests",
    metavar="PATH",
    help="Refuse unless the documents were made from these manifests and cover every one of "
    "their providers.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when the plans delete anything, or the drift reports drifted.",
)
def report_merge(
    files: tuple[str, ...],
    fmt: str,
    output: str | None,
    manifests: str | None,
    detailed_exitcode: bool,
) -> int:
    """Merge plan or drift JSON documents (files or globs) into one report.

    Totals and a row per provider. Refuses documents of two kinds, from different manifests, or
    covering a provider twice.

    \b
    Examples:
      reconcile report merge 'plans/*.json' --format markdown
      reconcile report merge drift-*.json --manifests manifests/ --format html -o drift.html
    """
    from reconcile.report import merge_files

    return merge_files(
        files, fmt, output, manifests, detailed_exitcode, lambda text: click.echo(text, nl=False)
    )


@cli.group()
def state() -> None:
    """The state store: where the locks, the journal and saved plans live."""


@state.command("migrate")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_MANIFESTS)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The store to copy the journal to, e.g. s3://BUCKET/PREFIX (reached with the "
    "[state] table's endpoint, region and key variables).",
)
@shared_option("state_dir")
def state_migrate(path: Path, to: str, state_dir: Path | None) -> int:
    """Copy the local journal (.reconcile/ beside PATH's manifests) to the store URL.

    Run it again safely: it copies only the records not copied yet. The local journal is left
    as it was; set [state] url (or --state, or $RECONCILE_STATE) to URL afterwards.

    \b
    Examples:
      reconcile state migrate manifests/ --to s3://team-state/prod
    """
    from reconcile.session import migrate_state

    manifest = _load(path) if path.exists() else None
    source, target, copied = migrate_state(manifest, _state_options(path, state_dir, None), to)
    click.echo(
        f"Copied {copied.copied} journal record(s) from {source} to {target}"
        f" ({copied.already_there} were already there)."
    )
    for skipped in copied.skipped:
        warn(f"not copied: {skipped}")
    return EXIT_OK


@cli.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def forge(args: tuple[str, ...]) -> int:
    """The GitOps pipeline's forge steps: check, comment, fetch-plan, approval (GitHub, GitLab).

    `reconcile forge --help` lists them; `reconcile forge approval --help` shows one.
    """
    from reconcile.forge.__main__ import main as forge_main

    return forge_main(list(args), prog="reconcile forge")


@cli.group()
def emulator() -> None:
    """The built-in emulator of the platforms' APIs (no account needed)."""


@emulator.command()
@click.option(
    "--state",
    "state_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON state to serve (it is not modified unless --persist).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Delay every API request.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Add up to this much random delay.",
)
@click.option(
    "--fail-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of requests answered with 408/429/500.",
)
@click.option("--seed", type=int, help="Seed the injected faults so runs reproduce.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[,KEY=VALUE...]",
    callback=lambda ctx, param, specs: _parse_faults(specs),
    help="Inject a fault (repeatable): KIND is status, slow, reset, truncate, inconsistent, "
    "throttle or lost; keys: method, path (a glob), action (Qianfan), rate, times, status, "
    "delay_ms, reply (status|reset), rps, burst, retry_after, delta.",
)
@click.option("--persist", is_flag=True, help="Write every change back to the state file.")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Print a line per request (off for benchmarks: it costs a tenth of each request).",
)
def serve(
    state_file: Path,
    host: str,
    port: int,
    latency_ms: float,
    jitter_ms: float,
    fail_rate: float,
    seed: int | None,
    faults: list[Any],
    persist: bool,
    access_log: bool,
) -> int:
    """Serve the platforms' APIs over HTTP from a JSON state file.

    \b
    Examples:
      reconcile emulator serve --state examples/demo/emulator-state.json --port 8080
      reconcile emulator serve --state s.json --seed 7 \\
        --fault status,status=503,method=GET,rate=0.05 --fault lost,method=DELETE,rate=0.05 \\
        --fault throttle,rps=20,burst=40 --fault inconsistent,path=/v1/*/models,times=1
    """
    from reconcile.emulator import EmulatorSettings
    from reconcile.emulator import serve as run_server

    settings = EmulatorSettings(
        persist_path=state_file if persist else None,
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        fail_rate=fail_rate,
        seed=seed,
        faults=tuple(faults),
    )
    run_server(state_file, host, port, settings, access_log=access_log)
    return EXIT_OK


def _parse_faults(specs: tuple[str, ...]) -> list[Any]:
    """`--fault` specs as the emulator's `Fault`s; a bad one is a usage error naming it."""
    from reconcile.emulator import Fault

    try:
        return [Fault.parse(spec) for spec in specs]
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--fault") from None


@emulator.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@shared_option("state_dir")
def reset(path: Path, state_dir: Path | None) -> int:
    """Reset the emulated platforms of PATH's manifests to their seed state.

    \b
    Example:
      reconcile emulator reset examples/demo
    """
    from reconcile.emulator.store import seed_record

    directory = _state_dir(path, state_dir) / "emulator"
    removed = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for file in removed:
        file.unlink()
        seed_record(file).unlink(missing_ok=True)
    click.echo(f"Reset {len(removed)} emulated state file(s) in {directory}.")
    return EXIT_OK


# -- the edge: exceptions to exit codes ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    cwd = Path.cwd()
    try:
        return _main(argv)
    finally:
        # `-C DIR` is this command's: a process that goes on (tests, a library caller) is back
        # where it was.
        os.chdir(cwd)
        if "reconcile.logs" in sys.modules:
            sys.modules["reconcile.logs"].remove_logging()
        # What a command froze (`collector_paused`) is the collector's again: for a process
        # that goes on after the command (tests, a library caller), not for one that exits.
        gc.unfreeze()


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted: nothing was deleted.", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as error:
        error.show()
        return EXIT_ERROR
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except ReconcileError as error:
        echo_error(str(error))
        return error.exit_code
    except OSError as error:
        # The machine said no (a missing folder, a full disk, no permission): not a bug.
        click.echo(
            f"Error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), err=True
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("\nInterrupted: nothing was deleted.", err=True)
        return EXIT_INTERRUPTED
    except Exception as error:
        click.echo(
            f"reconcile {__version__}: unexpected error: {type(error).__name__}: {error}\n"
            "This is a bug in reconcile, not in your manifests; please report it with the "
            "command you ran.",
            err=True,
        )
        return EXIT_BUG
    return code if isinstance(code, int) else EXIT_OK
