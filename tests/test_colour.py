"""Colour by the no-color.org rules, FORCE_COLOR and --no-color (reconcile/colour.py)."""

from __future__ import annotations

import io

import pytest

from reconcile.colour import stream_wants_colour, use_colour

# (environment, isatty, --no-color) -> colour?
CASES = [
    # on a terminal, nothing set: colour; off a terminal: none
    ({}, True, False, True),
    ({}, False, False, False),
    # NO_COLOR with any non-empty value disables, on a terminal too
    ({"NO_COLOR": "1"}, True, False, False),
    ({"NO_COLOR": "0"}, True, False, False),
    ({"NO_COLOR": "false"}, True, False, False),
    # an empty NO_COLOR is as if unset (no-color.org)
    ({"NO_COLOR": ""}, True, False, True),
    ({"NO_COLOR": ""}, False, False, False),
    # FORCE_COLOR forces colour off a terminal
    ({"FORCE_COLOR": "1"}, False, False, True),
    ({"FORCE_COLOR": "true"}, False, False, True),
    ({"FORCE_COLOR": "3"}, False, False, True),
    # ... but 0 / false / empty do not force it
    ({"FORCE_COLOR": "0"}, False, False, False),
    ({"FORCE_COLOR": "false"}, False, False, False),
    ({"FORCE_COLOR": ""}, False, False, False),
    ({"FORCE_COLOR": ""}, True, False, True),
    # FORCE_COLOR=0 turns colour off even on a terminal
    ({"FORCE_COLOR": "0"}, True, False, False),
    # NO_COLOR wins over FORCE_COLOR; an empty NO_COLOR does not
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False, False),
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False, False),
    ({"NO_COLOR": "", "FORCE_COLOR": "1"}, False, False, True),
    # --no-color wins over everything
    ({}, True, True, False),
    ({"FORCE_COLOR": "1"}, True, True, False),
    ({"FORCE_COLOR": "1"}, False, True, False),
    ({"NO_COLOR": ""}, True, True, False),
]


@pytest.mark.parametrize(("env", "isatty", "flag", "expected"), CASES)
def test_use_colour_follows_no_color_org_force_color_and_the_flag(
    env: dict[str, str], isatty: bool, flag: bool, expected: bool
) -> None:
    assert use_colour(env, isatty, flag) is expected


def test_a_stream_that_is_no_terminal_gets_colour_only_when_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert stream_wants_colour(io.StringIO(), no_color_flag=False) is False
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert stream_wants_colour(io.StringIO(), no_color_flag=False) is True
    assert stream_wants_colour(io.StringIO(), no_color_flag=True) is False


def test_a_closed_stream_counts_as_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stream = io.StringIO()
    stream.close()
    assert stream_wants_colour(stream, no_color_flag=False) is False
