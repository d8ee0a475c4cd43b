"""`reconcile schema`: a valid JSON Schema (2020-12) of a manifest file that documents every
field, accepts every valid manifest of the repository and refuses what the loader refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reconcile.cli import main
from reconcile.errors import ManifestError
from reconcile.manifest import load_manifest
from tests.conftest import ROOT

#: The keywords of JSON Schema 2020-12 (core, applicator, validation, meta-data, format).
KEYWORDS = {
    "$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
    "$vocabulary", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas",
    "prefixItems", "items", "contains", "properties", "patternProperties", "additionalProperties",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties", "type", "enum", "const",
    "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
    "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired", "title", "description",
    "default", "deprecated", "readOnly", "writeOnly", "examples", "format",
}  # fmt: skip
#: Keywords whose value is a map of names to schemas, or a list of schemas.
SCHEMA_MAPS = {"$defs", "properties", "patternProperties", "dependentSchemas"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from reconcile.schema import manifest_schema

    return manifest_schema()


def walk(node: dict[str, Any], where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every subschema of `node`, with where it is."""
    found = [(where, node)]
    for key, value in node.items():
        if key in SCHEMA_MAPS:
            for name, sub in value.items():
                found += walk(sub, f"{where}/{key}/{name}")
        elif key in SCHEMA_LISTS:
            for index, sub in enumerate(value):
                found += walk(sub, f"{where}/{key}/{index}")
        elif key in ("items", "additionalProperties", "propertyNames", "not") and isinstance(
            value, dict
        ):
            found += walk(value, f"{where}/{key}")
    return found


def errors(schema: dict[str, Any], node: dict[str, Any], value: Any, at: str = "") -> list[str]:
    """A small validator for the keywords the manifest schema uses (the test runs without the
    jsonschema package; when it is installed, the test below checks against it too)."""
    if "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return errors(schema, target, value, at)
    found: list[str] = []
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    kind = node.get("type")
    if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        return [f"{at}: not an integer"]
    if kind == "number" and not (isinstance(value, int | float) and not isinstance(value, bool)):
        return [f"{at}: not a number"]
    if kind in kinds and not isinstance(value, kinds[kind]):
        return [f"{at}: not {kind}"]
    if "const" in node and value != node["const"]:
        found.append(f"{at}: not {node['const']!r}")
    if "enum" in node and value not in node["enum"]:
        found.append(f"{at}: not one of {node['enum']}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            found.append(f"{at}: does not match {node['pattern']}")
        if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", 10**9):
            found.append(f"{at}: bad length")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < node.get("minimum", -(10**30)) or value > node.get("maximum", 10**30):
            found.append(f"{at}: out of range")
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            found.append(f"{at}: out of range")
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key in node.get("required", []):
            if key not in value:
                found.append(f"{at}: {key} is required")
        for key, item in value.items():
            if "propertyNames" in node:
                found += errors(schema, node["propertyNames"], key, f"{at}/{key} (name)")
            if key in properties:
                found += errors(schema, properties[key], item, f"{at}/{key}")
            elif node.get("additionalProperties") is False:
                found.append(f"{at}: unknown key {key}")
            elif isinstance(node.get("additionalProperties"), dict):
                found += errors(schema, node["additionalProperties"], item, f"{at}/{key}")
    if isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            found += errors(schema, node["items"], item, f"{at}/{index}")
    if "anyOf" in node and all(errors(schema, sub, value, at) for sub in node["anyOf"]):
        found.append(f"{at}: matches none of anyOf")
    if "oneOf" in node:
        matching = [sub for sub in node["oneOf"] if not errors(schema, sub, value, at)]
        if len(matching) != 1:
            found.append(f"{at}: matches {len(matching)} of oneOf")
    return found


def manifests() -> list[Path]:
    return sorted(
        path
        for path in [*ROOT.glob("examples/**/*.toml"), *ROOT.glob("tests/**/*.toml")]
        if ".reconcile" not in path.parts
    )


def test_reconcile_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed["title"] == "reconcile manifest"
    assert set(printed["properties"]) == {"providers", "policy", "models"}


def test_the_schema_uses_only_json_schema_keywords_and_its_refs_resolve(
    schema: dict[str, Any],
) -> None:
    for where, node in walk(schema):
        unknown = set(node) - KEYWORDS
        assert not unknown, f"{where}: {unknown}"
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/$defs/") in schema["$defs"], where
    assert "null" not in json.dumps(schema)  # TOML has no null: optional keys are left out


def test_every_field_is_documented(schema: dict[str, Any]) -> None:
    for name, definition in schema["$defs"].items():
        for key, field in definition.get("properties", {}).items():
            assert field.get("description"), f"{name}.{key} has no description"
    for key, field in schema["properties"].items():
        assert field.get("description"), key


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_schema_is_never_stricter_than_the_loader(schema: dict[str, Any], path: Path) -> None:
    """What the schema refuses, the loader refuses (the loader also checks what a schema cannot
    say: credentials for real endpoints, names declared twice across files)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return  # not TOML: nothing for a schema to judge
    if errors(schema, schema, document):
        with pytest.raises(ManifestError):
            load_manifest(path)


def test_the_schema_accepts_the_demo_and_every_planner_case(schema: dict[str, Any]) -> None:
    valid = [path for path in manifests() if "bad_inputs" not in path.parts]
    assert len(valid) > 40
    for path in valid:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        assert errors(schema, schema, document) == [], path


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"models": [{"provider": "p", "name": "m", "verisons": ["v1"]}]}, "unknown key"),
        ({"providers": {"p": {"type": "fabric", "endpoint": "x"}}}, "oneOf"),
        ({"providers": {"p": {"type": "azure"}}}, "oneOf"),
        ({"providers": {"bad name": {"type": "qianfan"}}}, "does not match"),
        ({"policy": {"keep_latest": -1}}, "out of range"),
        ({"policy": {"min_age": 24}}, "not string"),
        ({"policy": {"grace": "7 days"}}, "does not match"),
        ({"policy": {"mode": "dry-run"}}, "not one of"),
        ({"policy": {"max_delete_percent": 101}}, "out of range"),
        ({"providers": {"p": {"type": "qianfan", "policy": {"keep_within": "3y"}}}}, "oneOf"),
        ({"models": [{"provider": "p", "name": "m", "versions": [""]}]}, "none of anyOf"),
        (
            {"providers": {"p": {"type": "qianfan", "credentials": {"token_env": "1X"}}}},
            "oneOf",
        ),
        (
            {"providers": {"p": {"type": "qianfan", "credentials": {"token_env": "QF_TOKEN"}}}},
            "oneOf",
        ),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(
    schema: dict[str, Any], document: dict[str, Any], problem: str
) -> None:
    assert any(problem in error for error in errors(schema, schema, document))


def test_the_schema_describes_the_retention_keys(schema: dict[str, Any]) -> None:
    policy = schema["$defs"]["Policy"]["properties"]
    for key in ("min_age", "keep_within", "keep_before_in_use", "max_delete_percent", "grace"):
        assert policy[key]["description"], key
    assert policy["min_age"]["pattern"] == "^[0-9]{1,9}[smhdw]$"
    assert policy["mode"]["enum"] == ["enforce", "observe"]
    document = {
        "policy": {"min_age": "24h", "keep_within": "30d", "grace": "7d", "mode": "observe"}
    }
    assert errors(schema, schema, document) == []


def test_the_short_form_of_versions_is_allowed(schema: dict[str, Any]) -> None:
    document = {
        "providers": {"q": {"type": "qianfan", "scope": "workspace"}},
        "models": [
            {"provider": "q", "name": "m", "versions": ["v1", {"name": "v2", "protect": True}]}
        ],
    }
    assert errors(schema, schema, document) == []


def test_help_loads_none_of_the_heavy_libraries() -> None:
    """`reconcile --help` stays fast: pydantic, httpx, deepdiff and tomli-w load only inside the
    commands that need them."""
    script = (
        "import sys\n"
        "from reconcile.cli import main\n"
        "code = main(['--help'])\n"
        "heavy = [m for m in ('pydantic', 'httpx', 'deepdiff', 'tomli_w', 'starlette') "
        "if m in sys.modules]\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stderr.strip().splitlines()[-1] == "0 []"
    assert "drift" in result.stdout and "import" in result.stdout and "schema" in result.stdout


def test_a_fabric_template_is_described(schema: dict[str, Any]) -> None:
    template = {
        "type": "fabric",
        "endpoint": "https://fabric.example.com",
        "workspaces": ["ws-1", {"workspace_id": "ws-2", "project_id": "p2"}],
    }
    model = {"provider": "fab", "name": "m", "workspaces": ["ws-2"]}
    assert errors(schema, schema, {"providers": {"fab": template}, "models": [model]}) == []
    both = {**template, "workspace_id": "ws-0"}
    assert errors(schema, schema, {"providers": {"fab": both}})
    bad_row = {**template, "workspaces": [{"project_id": "p"}]}
    assert errors(schema, schema, {"providers": {"fab": bad_row}})
