"""The application layer of `reconcile import`: list one provider, turn what is live into a
manifest that loads (checked before anything is written), and write it without overwriting."""

from __future__ import annotations

import os
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.files import create_atomically, write_atomically
from reconcile.importer import Imported, import_manifest
from reconcile.manifest import Manifest, load_manifest
from reconcile.model import Snapshot
from reconcile.providers.base import Progress
from reconcile.wiring import EMULATOR_SCHEME, Options, close_providers, open_providers


def refuse_overwrite(
    manifest: Manifest, provider: str, path: Path, output: Path | None, *, force: bool
) -> None:
    """Before listing: the provider must be the manifests', and OUTPUT new (or --force)."""
    if provider not in manifest.providers:
        raise ReconcileError(
            f"no provider named {provider!r} in {path}",
            hint="providers defined: " + ", ".join(sorted(manifest.providers)),
        )
    if output is not None and output.exists() and not force:
        raise ReconcileError(
            f"{output} exists: nothing was written",
            hint="pass --force to replace it, or choose another --output",
        )


async def list_one(
    manifest: Manifest, provider: str, options: Options, progress: Progress
) -> Snapshot:
    providers = open_providers(manifest, [provider], options)
    try:
        return await providers[provider].snapshot(progress)
    finally:
        await close_providers(providers)


def imported_manifest(
    manifest: Manifest,
    provider: str,
    snapshot: Snapshot,
    model_glob: str | None,
    output: Path | None,
) -> Imported:
    """The manifest declaring what `snapshot` holds, checked to load as it is."""
    command = f"reconcile import --provider {provider}" + (
        f" --model '{model_glob}'" if model_glob else ""
    )
    imported = import_manifest(
        manifest,
        provider,
        snapshot,
        model_glob=model_glob,
        endpoint=_moved_endpoint(manifest, provider, output),
        command=command,
    )
    _check_imported(imported.text)
    return imported


def _moved_endpoint(manifest: Manifest, provider: str, output: Path | None) -> str | None:
    """An `emulator:STATE.json` endpoint is relative to its manifest: from a manifest written
    elsewhere, the same seed file has another relative path."""
    endpoint = manifest.providers[provider].endpoint
    origin = manifest.origins.get(f"providers.{provider}")
    if output is None or origin is None or not endpoint.startswith(EMULATOR_SCHEME):
        return None
    state = Path(endpoint.removeprefix(EMULATOR_SCHEME))
    if state.is_absolute():
        return None
    seed = Path(origin.file).parent / state
    relative = os.path.relpath(seed.resolve(), output.resolve().parent)
    return EMULATOR_SCHEME + Path(relative).as_posix()


def _check_imported(text: str) -> None:
    """The written manifest must load as it is: a bug here would be a file no one can use."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "imported.toml"
        file.write_text(text, encoding="utf-8")
        try:
            load_manifest(file, insecure=True)
        except ReconcileError as error:
            raise ReconcileError(
                f"the imported manifest does not validate ({error}): nothing was written. "
                "This is a bug in reconcile; please report it"
            ) from None


def write_new(output: Path, text: str, *, force: bool) -> None:
    """Write `output` whole (a temporary file renamed over it), never replacing a file that
    appeared meanwhile unless `force`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        if force:
            write_atomically(output, text)
        else:
            create_atomically(output, text)  # no silent overwrite
    except FileExistsError:
        raise ReconcileError(
            f"{output} exists: nothing was written", hint="pass --force to replace it"
        ) from None
