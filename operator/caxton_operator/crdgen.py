"""Generates the CustomResourceDefinitions in crds/ from the pydantic models.

    python -m caxton_operator.crdgen [--check]

pydantic's JSON schema becomes a structural OpenAPI v3 schema: references
inlined, `Optional` unwrapped (absent rather than null), titles dropped, nested
objects defaulted to {} so their own defaults apply. `--check` fails if the
committed files differ from what the models generate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from caxton_operator.models import CaxtonAgentSpec, CaxtonBackupSpec, CaxtonClusterSpec, CaxtonUpgradeSpec, Spec

GROUP = "caxton.dev"
VERSION = "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]
# The same files twice: crds/ for kubectl users, the chart's crds/ for `helm install`.
CRD_DIRS = (ROOT / "crds", ROOT / "helm" / "caxton-operator" / "crds")

_KEEP = {"type", "description", "default", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "required", "properties", "items", "additionalProperties",
         "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields", "format"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot make a structural schema of anyOf {schema['anyOf']}")
        merged = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        if merged.get("default", "") is None:
            merged.pop("default")
        return structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _property(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            continue  # `false` (extra="forbid"): structural schemas reject unknown fields by themselves
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _property(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    return structural(schema, defs)


def _object_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Defaults nested objects to their full default value, so leaving one out gives the same
    object as writing it empty (and CEL rules on it see every field)."""
    for name, field in model.model_fields.items():
        prop = schema.get("properties", {}).get(field.alias or name)
        annotation = field.annotation
        if prop is None or not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        _object_defaults(annotation, prop)
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            prop["default"] = value.model_dump(by_alias=True, exclude_none=True, mode="json")


def spec_schema(model: type[Spec]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    _object_defaults(model, schema)
    return schema


def crd(kind: str, plural: str, short: str, model: type[Spec], columns: list[dict[str, Any]],
        *, scale: bool = False, description: str) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "description": description,
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": spec_schema(model),
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                           "description": "written by the operator"},
            },
        }},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            *columns,
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    if scale:
        version["subresources"]["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.readyReplicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "shortNames": [short],
                      "listKind": f"{kind}List", "categories": ["caxton"]},
            "versions": [version],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    return {
        "caxtonclusters.yaml": crd(
            "CaxtonCluster", "caxtonclusters", "cxc", CaxtonClusterSpec, scale=True,
            description="A cluster of Caxton nodes run by the operator.",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.readyReplicas"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Version", "type": "string", "jsonPath": ".status.currentVersion"},
            ],
        ),
        "caxtonupgrades.yaml": crd(
            "CaxtonUpgrade", "caxtonupgrades", "cxu", CaxtonUpgradeSpec,
            description="A canary-then-rolling upgrade of a CaxtonCluster.",
            columns=[
                {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            ],
        ),
        "caxtonagents.yaml": crd(
            "CaxtonAgent", "caxtonagents", "cxa", CaxtonAgentSpec,
            description="A Wasm agent deployed declaratively to a CaxtonCluster.",
            columns=[
                {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
                {"name": "Priority", "type": "string", "jsonPath": ".spec.priority"},
            ],
        ),
        "caxtonbackups.yaml": crd(
            "CaxtonBackup", "caxtonbackups", "cxb", CaxtonBackupSpec,
            description="A full backup of a CaxtonCluster to S3 or a volume (docs/backup.md).",
            columns=[
                {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"},
                {"name": "Id", "type": "string", "jsonPath": ".status.id"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Size", "type": "integer", "jsonPath": ".status.sizeBytes"},
                {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            ],
        ),
    }


def render(doc: dict[str, Any]) -> str:
    header = "# Generated by `python -m caxton_operator.crdgen` from operator/caxton_operator/models.py.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the CRD files are not up to date")
    args = parser.parse_args()
    stale = []
    for directory in CRD_DIRS:
        for name, doc in all_crds().items():
            path = directory / name
            text = render(doc)
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m caxton_operator.crdgen", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
