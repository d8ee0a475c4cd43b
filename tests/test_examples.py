"""The pipelines stay true: every `reconcile` command that the packaged pipelines (the composite
action the GitHub example uses, the template the GitLab example includes) run parses with this
CLI."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from reconcile.cli import cli
from reconcile.forge.__main__ import parser as forge_parser

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = [ROOT / "action" / "action.yml", ROOT / "ci" / "gitlab" / "reconcile.gitlab-ci.yml"]
COMMAND = re.compile(r"(?:^|[;|&(]\s*|\s)reconcile\s+(?P<args>[a-z][^;|&\n]*)")


def _unquoted_end(args: str) -> str:
    """Without the closing quote of a YAML-quoted line (its opening quote is before `reconcile`);
    a quote that closes an argument of the command stays."""
    while args and args[-1] in "'\"" and args.count(args[-1]) % 2:
        args = args[:-1]
    return args


def _commands(path: Path) -> list[str]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in COMMAND.finditer(line):
            found.append(_unquoted_end(match.group("args").strip()))
    return found


def _parse(args: str) -> None:
    words = shlex.split(re.sub(r"\$\{?\{?[^}\s\"]*\}?\}?|\$\([^)]*\)", "VALUE", args))
    for redirection in (">", ">>"):  # a shell redirection ends the command's own arguments
        if redirection in words:
            words = words[: words.index(redirection)]
    name, *rest = words
    if name == "forge":  # its steps parse their own arguments (reconcile/forge/__main__.py)
        try:
            forge_parser("reconcile forge").parse_args(rest)
        except SystemExit:
            raise click.UsageError(f"forge {' '.join(rest)}: see the error above") from None
        return
    command = cli.commands.get(name)
    assert command is not None, f"no command {name!r}"
    command.make_context(name, rest)


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.name)
def test_every_reconcile_command_in_the_pipeline_parses(
    pipeline: Path, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The files the pipeline's steps have made by the time each command runs.
    shutil.copytree(demo, tmp_path / "manifests")
    shutil.copytree(demo, tmp_path / "VALUE")  # "$MANIFESTS", as _parse fills variables in
    for made in ("plan.json", "reviewed/plan.json", "reviewed-plan.json"):
        (tmp_path / made).parent.mkdir(exist_ok=True)
        (tmp_path / made).write_text("{}")
    monkeypatch.chdir(tmp_path)
    commands = _commands(pipeline)
    steps = {"validate", "plan", "show", "apply", "drift", "forge"}
    assert {c.split()[0] for c in commands} >= steps
    for args in commands:
        try:
            _parse(args)
        except click.ClickException as error:
            pytest.fail(f"{pipeline.name}: `reconcile {args}`: {error.format_message()}")
