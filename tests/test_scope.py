"""Addresses and targets (`reconcile.scope`): one address per object whatever its name, read back
exactly; and a `--target` that selects nothing refused by plan and apply alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile import scope
from reconcile.cli import main
from reconcile.errors import PlanError
from reconcile.scope import Key, parse_target, quote, segment

NAMES = st.text(min_size=1, max_size=12)


@given(model=NAMES, model_id=st.none() | NAMES, version=NAMES, version_id=st.none() | NAMES)
def test_an_address_reads_back_as_the_names_and_ids_it_was_made_of(
    model: str, model_id: str | None, version: str, version_id: str | None
) -> None:
    address = f"fab/{segment(model, model_id)}/{segment(version, version_id)}"
    target = parse_target(address)
    assert target.provider == "fab"
    assert target.model is not None and target.version is not None
    assert (target.model.name, target.model.id) == (model, model_id)
    assert (target.version.name, target.version.id) == (version, version_id)


@given(NAMES)
def test_a_quoted_name_holds_no_control_character_and_no_line_break(name: str) -> None:
    quoted = quote(name)
    assert all(char == " " or (char.isprintable() and not char.isspace()) for char in quoted)


def test_a_name_with_a_slash_is_quoted_and_a_plain_one_is_not() -> None:
    assert quote("a/b") == '"a/b"'
    assert quote("support-bot") == "support-bot"
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("x\n= keep") == '"x\\n= keep"'
    assert quote("a#1") == '"a#1"'
    assert quote("\u202eevil") == '"\\u202eevil"'


def _needs_quotes_by_each_character(text: str) -> bool:
    """The rule as written for every character (the reference of the ASCII fast path)."""
    import unicodedata

    return not text or any(
        char in '/"#\\' or char.isspace() or unicodedata.category(char).startswith("C")
        for char in text
    )


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_is_quoted_by_the_rule_for_every_character(code: int) -> None:
    for text in (chr(code), f"a{chr(code)}b", f"model-{chr(code)}"):
        assert scope._needs_quotes(text) == _needs_quotes_by_each_character(text), repr(text)


@given(st.text(max_size=12))
def test_the_fast_rule_for_ascii_names_is_the_rule_for_every_character(text: str) -> None:
    assert scope._needs_quotes(text) == _needs_quotes_by_each_character(text)


def test_a_target_selects_what_it_names_and_what_is_inside_it_only() -> None:
    version_b_of_a = Key("fab", "a", "m-a", "b", "v-b")
    model_a_b = Key("fab", "a/b", "m-ab")
    assert parse_target("fab/a/b").selects(version_b_of_a)
    assert not parse_target("fab/a/b").selects(model_a_b)
    assert parse_target('fab/"a/b"').selects(model_a_b)
    assert not parse_target('fab/"a/b"').selects(version_b_of_a)
    assert parse_target("fab/a").selects(version_b_of_a)
    assert not parse_target("fab/a").selects(model_a_b)
    assert parse_target("fab").selects(model_a_b)
    assert parse_target("fab/a#m-a").selects(version_b_of_a)
    assert not parse_target("fab/a#m-other").selects(version_b_of_a)


@pytest.mark.parametrize("text", ['fab/"a/b', "fab//x", "fab/a/b/c", "fab/a b", 'fab/"\\q"', ""])
def test_a_target_that_is_not_an_address_is_refused_saying_how_to_write_one(text: str) -> None:
    with pytest.raises(PlanError, match="is not an address") as raised:
        parse_target(text)
    assert raised.value.hint is not None and "quote a name" in raised.value.hint


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flags", [(), ("--detailed-exitcode",), ("--json",)])
def test_plan_with_a_target_that_selects_nothing_is_an_error_naming_the_closest(
    capsys: pytest.CaptureFixture[str], demo: Path, flags: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, "plan", str(demo), "--target", "fabric-demo/legacy-q", *flags)
    assert code == 1
    assert "No changes" not in out
    assert "--target fabric-demo/legacy-q selects nothing" in err
    assert "fabric-demo/legacy-qa" in err  # the closest address
    assert "Traceback" not in err


def test_plan_with_a_target_inside_a_whole_model_delete_says_it_goes_with_its_model(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    code, out, err = run(capsys, "plan", str(demo), "--target", "fabric-demo/legacy-qa/r2")
    assert code == 1, out
    assert "belongs to model fabric-demo/legacy-qa" in err
    assert "deletes it whole, so this version is deleted with it" in err
    assert "--target fabric-demo/legacy-qa" in err


@pytest.mark.parametrize("target", ["fabric-demo/legacy-q", "fabric-demo/legacy-qa/r2"])
def test_apply_with_a_target_that_selects_nothing_refuses_and_deletes_nothing(
    capsys: pytest.CaptureFixture[str], demo: Path, target: str
) -> None:
    before = fingerprints(capsys, demo)
    code, _, err = run(capsys, "apply", str(demo), "--auto-approve", "--target", target)
    assert code == 1
    assert "--target" in err and "Traceback" not in err
    assert fingerprints(capsys, demo) == before


def fingerprints(capsys: pytest.CaptureFixture[str], demo: Path) -> list[str]:
    """What each scope of the demo holds (a digest of every live object in it)."""
    code, out, _ = run(capsys, "plan", str(demo), "--json")
    assert code == 0
    return [scope["fingerprint"] for scope in json.loads(out)["scopes"]]
