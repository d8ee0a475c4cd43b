"""The commands about manifests themselves: validate, import (live state to a manifest),
schema, and providers (the scopes a manifest names)."""

from __future__ import annotations

from pathlib import Path

import click

from reconcile.cli.options import (
    DEFAULT_MANIFESTS,
    EXIT_ERROR,
    EXIT_OK,
    PROVIDERS,
    Command,
    Run,
    common,
    load_manifests,
)
from reconcile.console import (
    ProgressLine,
    run_command,
)


@click.command(cls=Command)
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

    manifest = load_manifests(path)
    for warning in manifest_warnings(manifest):
        click.echo(warning, err=True)
    versions = sum(len(model.versions or ()) for model in manifest.models)
    click.echo(
        f"{path}: valid: {len(manifest.providers)} provider(s), {len(manifest.models)} model(s), "
        f"{versions} declared version(s)."
    )
    return EXIT_OK


@click.command("import", cls=Command)
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
    from reconcile.model import printable

    manifest = load_manifests(path, insecure=run.insecure)
    refuse_overwrite(manifest, provider_name, path, output, force=force)
    progress = ProgressLine(run.quiet)
    try:
        snapshot = run_command(list_one(manifest, provider_name, run.options(path), progress))
    finally:
        progress.clear()
    imported = imported_manifest(manifest, provider_name, snapshot, model_glob, output)
    for note in imported.notes:
        click.echo(f"Note: {printable(note)}.", err=True)
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


@click.command(cls=Command)
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


@click.command(cls=Command)
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

    manifest = load_manifests(path)
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
