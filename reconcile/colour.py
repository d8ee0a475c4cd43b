"""Whether output is coloured: the no-color.org rules, `FORCE_COLOR`, and `--no-color`.

In order, the first rule that applies decides:

1. `--no-color` on the command line: no colour (the most explicit choice wins).
2. `NO_COLOR` set to a non-empty value: no colour. An empty `NO_COLOR=` is the same as unset
   (https://no-color.org: "when present and not an empty string").
3. `FORCE_COLOR` set to `0` or `false`: no colour (Node's and supports-color's reading).
4. `FORCE_COLOR` set to any other non-empty value: colour, even when the output is not a terminal
   (a CI log that renders ANSI). An empty `FORCE_COLOR=` is the same as unset.
5. Otherwise: colour only when the stream is a terminal.

`NO_COLOR` wins over `FORCE_COLOR`: a user who asked for no colour anywhere is not overruled by a
tool or CI default that forces it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

#: `FORCE_COLOR` values that turn colour off rather than forcing it on.
FORCE_COLOR_OFF = frozenset({"0", "false"})


def use_colour(env: Mapping[str, str], isatty: bool, no_color_flag: bool) -> bool:
    """Whether to colour, from the environment, whether the stream is a terminal, and
    `--no-color` (see the module's docstring for the rules). Pure."""
    if no_color_flag or env.get("NO_COLOR"):
        return False
    force = env.get("FORCE_COLOR", "")
    if force:
        return force.strip().lower() not in FORCE_COLOR_OFF
    return isatty


def stream_wants_colour(stream: TextIO, no_color_flag: bool) -> bool:
    """`use_colour` for a real stream and this process's environment (the one place that reads
    them)."""
    try:
        isatty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream is no terminal
        isatty = False
    return use_colour(os.environ, isatty, no_color_flag)
