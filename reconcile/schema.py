"""The JSON Schema of a manifest file, from the pydantic records of `manifest.py`.

For editors: TOML language servers (taplo, Even Better TOML) validate and complete a manifest
that starts with `#:schema ./reconcile.schema.json`. The schema describes one file of a manifest
folder, so every top-level table is optional. It checks what a schema can say (keys, types,
patterns, ranges, the provider types, Qianfan's AK/SK-only credentials); `reconcile validate`
checks the rest (credentials given in pairs, names that look like secrets, endpoints, ids of the
platform's shape, names declared twice across files).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconcile.manifest import NAME_PATTERN, ModelSpec, Policy, ProviderConfig

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _ManifestFile(BaseModel):
    """One manifest file: what `reconcile validate` reads (a folder merges several)."""

    model_config = ConfigDict(
        extra="forbid",
        title="reconcile manifest",
        json_schema_extra={
            "description": "A reconcile manifest (TOML): the models and versions that should "
            "exist on LLM platform workspaces. Secrets never appear here: only the names of "
            "environment variables."
        },
    )

    providers: dict[str, ProviderConfig] = Field(
        {},
        description="[providers.NAME] tables: the platform workspaces (Fabric) or accounts "
        "(Qianfan) to reconcile.",
    )
    policy: Policy = Field(
        Policy(),
        description="Global rules; a [providers.NAME.policy] table overrides them key by key.",
    )
    models: tuple[ModelSpec, ...] = Field(
        (), description="[[models]] tables: the models to keep (or, with absent = true, delete)."
    )


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a manifest file."""
    schema = {"$schema": DIALECT, **_for_toml(_ManifestFile.model_json_schema())}
    schema["properties"]["providers"]["propertyNames"] = {"pattern": NAME_PATTERN}
    # `versions = ["v7", "v8"]` is short for tables with a name only (ModelSpec's validator).
    versions = schema["$defs"]["ModelSpec"]["properties"]["versions"]
    versions["items"] = {
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, versions["items"]]
    }
    _qianfan_signs_with_keys(schema)
    _fabric_templates(schema)
    return schema


def _fabric_templates(schema: dict[str, Any]) -> None:
    """A Fabric table gives workspace_id, or `workspaces` (a template: ids, or rows of the keys
    a row may set), never both (the loader expands a template; the record has no such field)."""
    fabric = schema["$defs"]["FabricProvider"]
    properties = fabric["properties"]
    row = {
        "type": "object",
        "additionalProperties": False,
        "required": ["workspace_id"],
        "properties": {
            key: properties[key]
            for key in ("workspace_id", "project_id", "endpoint", "services_endpoint")
        },
    }
    properties["workspaces"] = {
        "description": "A template: one provider scope per workspace, named NAME.WORKSPACE_ID; "
        "each item a workspace id, or a table that sets workspace_id, project_id, endpoint or "
        "services_endpoint for that workspace. Instead of workspace_id.",
        "type": "array",
        "minItems": 1,
        "items": {"anyOf": [properties["workspace_id"], row]},
    }
    fabric["required"] = [key for key in fabric["required"] if key != "workspace_id"]
    fabric["oneOf"] = [{"required": ["workspace_id"]}, {"required": ["workspaces"]}]


def _qianfan_signs_with_keys(schema: dict[str, Any]) -> None:
    """Qianfan's credentials are ak_env and sk_env only (`bce-auth-v1`): no token_env."""
    definitions = schema["$defs"]
    credentials = definitions["Credentials"]
    keys = ("ak_env", "sk_env")
    definitions["QianfanCredentials"] = {
        **credentials,
        "title": "QianfanCredentials",
        "properties": {key: credentials["properties"][key] for key in keys},
        "required": list(keys),
    }
    field = definitions["QianfanProvider"]["properties"]["credentials"]
    field["$ref"] = "#/$defs/QianfanCredentials"


def _for_toml(node: Any) -> Any:
    """TOML has no null: `X | None` fields become X (leaving the key out is how TOML says None),
    and `default: null` goes. pydantic's `discriminator` is an OpenAPI keyword, not JSON Schema:
    the providers' `type` constants already pick one of the `oneOf`."""
    if isinstance(node, list):
        return [_for_toml(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {
        key: _for_toml(_without_nulls(value) if key == "default" else value)
        for key, value in node.items()
        if key != "discriminator" and not (key == "default" and value is None)
    }
    options = result.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            del result["anyOf"]
            result = {**kept[0], **result}
        else:
            result["anyOf"] = kept
    return result


def _without_nulls(value: Any) -> Any:
    """A default table as TOML writes it: keys whose default is None are left out."""
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if item is not None}
    return value
