"""`reconcile validate --format github|json`: every manifest problem as a GitHub Actions
annotation or a JSON record, with its file, line, TOML path, message and hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.render.problems import Problem, github_line

BAD = """[providers.x]
type = "fabric"
workspace_id = 3

[[models]]
provider = "nope"
name = "a"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_github_format_prints_one_annotation_per_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(BAD, encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(file), "--format", "github")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 3
    # GitHub's property escaping: the path's ":" would otherwise end the properties.
    where = str(file).replace(":", "%3A").replace(",", "%2C")
    assert lines[0] == (
        f"::error file={where},line=3,title=reconcile%3A providers.x.workspace_id::"
        'expected a string, got an integer (3)%0Ahint: write workspace_id = "...", in quotes'
    )
    assert lines[2].startswith(f"::error file={where},line=6,title=reconcile%3A models[0].provider")
    assert "::no provider named 'nope'%0Ahint: providers defined: x" in lines[2]


def test_json_format_lists_errors_with_file_line_path_message_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(BAD, encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(file), "--format", "json")
    assert code == 1
    found = json.loads(out)
    assert found[0] == {
        "severity": "error",
        "file": str(file),
        "line": 3,
        "path": "providers.x.workspace_id",
        "message": "expected a string, got an integer (3)",
        "hint": 'write workspace_id = "...", in quotes',
    }
    assert [problem["line"] for problem in found] == [3, 1, 6]


def test_a_valid_manifest_gives_an_empty_list_and_text_stays_the_default(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "validate", str(demo), "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(capsys, "validate", str(demo), "--format", "github")
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "validate", str(demo))
    assert code == 0 and ": valid: 2 provider(s)" in out


def test_warnings_are_warning_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "m.toml"
    file.write_text(
        '[providers.p]\ntype = "fabric"\nendpoint = "emulator:s.json"\nworkspace_id = "w"\n'
        'scope = "declared"\n\n[policy]\nignore = ["tmp-*"]\n\n'
        '[[models]]\nprovider = "p"\nname = "tmp-a"\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(file), "--format", "github")
    assert code == 0
    assert out.startswith("::warning file=")
    assert ",line=10," in out and "ignore pattern" in out


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        # A message can neither end the command nor start another: CR and LF are escaped, and
        # "%" first (else "%0A" in the text would read as a line feed).
        (
            Problem("error", "100% bad\r\n::error::forged", "a.toml", 2),
            "::error file=a.toml,line=2,title=reconcile validate::100%25 bad\\r\\n::error::forged",
        ),
        # In properties ":" and "," are escaped too; "%" in a path stays a literal.
        (
            Problem("warning", "m", "dir,1/a:b%.toml", 7, "models[0].x"),
            "::warning file=dir%2C1/a%3Ab%25.toml,line=7,title=reconcile%3A models[0].x::m",
        ),
        (
            Problem("error", "two\nlines", hint="fix"),
            "::error title=reconcile validate::two\\nlines%0Ahint: fix",
        ),
    ],
)
def test_github_escaping(problem: Problem, expected: str) -> None:
    assert github_line(problem) == expected
