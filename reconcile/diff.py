"""Field-level differences between what a manifest declares and what is live.

The only module that imports deepdiff; its output never leaves here. DeepDiff runs only on pairs
whose values differ (a plain comparison first), so a large, mostly-in-sync workspace costs little.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconcile.model import FieldChange

_ROOT_KEY = re.compile(r"^root\['(?P<key>[^']*)'\](?P<rest>.*)$")


def field_changes(declared: Mapping[str, Any], live: Mapping[str, Any]) -> list[FieldChange]:
    """The declared keys whose live value differs; keys not declared are not compared."""
    differing = [key for key in declared if declared[key] != live.get(key)]
    if not differing:
        return []
    from deepdiff import DeepDiff  # deferred: only drift pays for the import

    left = {key: declared[key] for key in differing}
    right = {key: live.get(key) for key in differing}
    changes: dict[str, FieldChange] = {}
    for paths in DeepDiff(left, right, verbose_level=0).tree.values():
        for item in paths:
            key = _top_key(item.path())
            changes.setdefault(
                key, FieldChange(field=key, declared=left.get(key), live=right.get(key))
            )
    return [changes[key] for key in sorted(changes)]


def _top_key(path: str) -> str:
    match = _ROOT_KEY.match(path)
    return match.group("key") if match else path
