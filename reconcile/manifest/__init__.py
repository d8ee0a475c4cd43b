"""Manifests: the desired state, read from TOML files kept in git.

`specs` holds the records (the schema), `scanner` finds the line of each key, `loader` reads and
checks each file, `explain` puts pydantic's errors in the user's terms, `merge` joins a folder's
files into one `Manifest`, and `writer` writes manifests for `reconcile import`. The names other
modules use are re-exported here.
"""

from __future__ import annotations

from reconcile.manifest.advice import manifest_warnings
from reconcile.manifest.loader import load_manifest, manifest_files
from reconcile.manifest.scanner import Loc, line_of, scan_key_lines, toml_path
from reconcile.manifest.specs import (
    ENV_NAME_PATTERN,
    FABRIC_ID_PATTERN,
    NAME_PATTERN,
    Credentials,
    FabricProvider,
    Location,
    Manifest,
    ModelSpec,
    Policy,
    PolicyOverrides,
    ProviderBase,
    ProviderConfig,
    QianfanProvider,
    Spec,
    StateTable,
    VersionSpec,
    is_glob_match,
    parse_duration,
)
from reconcile.manifest.writer import dump_manifest

__all__ = [
    "ENV_NAME_PATTERN",
    "FABRIC_ID_PATTERN",
    "NAME_PATTERN",
    "Credentials",
    "FabricProvider",
    "Loc",
    "Location",
    "Manifest",
    "ModelSpec",
    "Policy",
    "PolicyOverrides",
    "ProviderBase",
    "ProviderConfig",
    "QianfanProvider",
    "Spec",
    "StateTable",
    "VersionSpec",
    "dump_manifest",
    "is_glob_match",
    "line_of",
    "load_manifest",
    "manifest_files",
    "manifest_warnings",
    "parse_duration",
    "scan_key_lines",
    "toml_path",
]
