"""The commands around the pipeline: the journal, force-unlock, the state store's migration,
merged reports of a CI matrix, and the forge steps of a GitOps pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconcile.cli.options import (
    DEFAULT_MANIFESTS,
    EXIT_OK,
    Command,
    Group,
    load_manifests,
    shared_option,
    state_dir_for,
)
from reconcile.console import (
    warn,
)
from reconcile.errors import ReconcileError

if TYPE_CHECKING:
    from reconcile.wiring import Options


@click.command(cls=Command)
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
        load_manifests(path), _state_options(path, state_dir, state_url), warn
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

    return Options(state_dir=state_dir_for(path, state_dir), state_url=state_url)


@click.command("force-unlock", cls=Command)
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

    manifest = load_manifests(path) if path.exists() else None
    store, info = release_lock(
        manifest, _state_options(path, state_dir, state_url), lock_id, force=force
    )
    click.echo(f"Released lock {lock_id} of {info.scope} in {store}.")
    return EXIT_OK


@click.group(cls=Group)
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


@click.group(cls=Group)
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

    manifest = load_manifests(path) if path.exists() else None
    source, target, copied = migrate_state(manifest, _state_options(path, state_dir, None), to)
    click.echo(
        f"Copied {copied.copied} journal record(s) from {source} to {target}"
        f" ({copied.already_there} were already there)."
    )
    for skipped in copied.skipped:
        warn(f"not copied: {skipped}")
    return EXIT_OK


@click.command(
    cls=Command,
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
