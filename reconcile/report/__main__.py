"""`python -m reconcile.report COMMAND`: reports over many documents, for a CI matrix.

    merge FILE...    one report from plan or drift JSON documents (files or globs): totals and a
                     row per provider, as text, markdown, html or json
    providers PATH   the provider names of the manifests at PATH, as a JSON list (a matrix)

Exit codes: 0 done; 1 an error (one line on stderr: the file and what is wrong); 2 with
`merge --detailed-exitcode`, when the merged plans delete anything or the drift reports drifted;
70 a bug (one line, please report).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.manifest import load_manifest
from reconcile.report import merge_files
from reconcile.report.render import RENDERERS
from reconcile.streams import readers_may_leave

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BUG = 70


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconcile.report", description="Reports over many plan or drift documents."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    merge_ = commands.add_parser(
        "merge",
        help="merge plan or drift JSON documents into one report",
        description="Merge the plan (reconcile plan --format json) or drift (reconcile drift "
        "--format json) documents of a CI matrix into one report with totals and a row per "
        "provider. Refuses documents of two kinds, from different manifests, or covering a "
        "provider twice.",
    )
    merge_.add_argument("files", nargs="+", metavar="FILE", help="a JSON document, or a glob")
    merge_.add_argument("--format", choices=sorted(RENDERERS), default="text")
    merge_.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    merge_.add_argument(
        "--manifests",
        metavar="PATH",
        help="refuse unless the documents were made from these manifests and cover every one "
        "of their providers",
    )
    merge_.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plans delete anything, or the drift reports drifted",
    )
    providers = commands.add_parser(
        "providers",
        help="print the manifests' provider names as a JSON list",
        description="Print the provider names of the manifests at PATH as a JSON list, for a "
        "CI matrix.",
    )
    providers.add_argument("path", nargs="?", default="manifests", metavar="PATH")
    providers.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain http:// endpoints on hosts that are not loopback",
    )
    return parser


def _merge(args: argparse.Namespace) -> int:
    return merge_files(
        args.files,
        args.format,
        args.output,
        args.manifests,
        args.detailed_exitcode,
        sys.stdout.write,
    )


def _providers(args: argparse.Namespace) -> int:
    manifest = load_manifest(Path(args.path), insecure=args.insecure)
    print(json.dumps(list(manifest.providers)))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    with readers_may_leave():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help is 0; a usage error (already printed) is an error
        return EXIT_OK if exit_.code in (0, None) else EXIT_ERROR
    try:
        return _merge(args) if args.command == "merge" else _providers(args)
    except ReconcileError as error:
        hint = f" (fix: {error.hint})" if error.hint else ""
        print(f"Error: {error.message}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as error:  # the edge: one line, never a traceback
        print(
            f"reconcile report: unexpected error: {type(error).__name__}: {error}\n"
            "This is a bug in reconcile; please report it with the command you ran.",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
