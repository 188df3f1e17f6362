"""The manifests `greenmatrix simulate` reads: WorkloadProfiles and OptimizationPolicies in YAML files.

Manifests are read with the API models, and every way a file can be wrong (not YAML, not a
WorkloadProfile, a schema violation) becomes a GreenMatrixError naming the field in camelCase, so
the CLI exits 2 with one line instead of a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from greenmatrix.api import API_VERSION
from greenmatrix.errors import GreenMatrixError, InvalidSpecError
from greenmatrix.validation import describe, field_path


class _ManifestLoader(yaml.SafeLoader):
    """YAML read as kubectl reads it: `1.1e9` is a number (YAML 1.2 and go-yaml), where PyYAML's
    YAML 1.1 rules make it the string "1.1e9" (they want a sign in the exponent)."""


_ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def _documents(path: Path, flag: str = "-f") -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise GreenMatrixError(flag, f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise GreenMatrixError(
            flag, f"{path} is not UTF-8 text (byte {err.start}); expected a YAML manifest"
        ) from None
    try:
        return [d for d in yaml.load_all(text, Loader=_ManifestLoader) if d is not None]
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise GreenMatrixError(
            flag, f"{path} is not valid YAML{at}: {getattr(err, 'problem', err)}"
        ) from None


def _schema_error(err: ValidationError, prefix: str = "spec") -> GreenMatrixError:
    """Pydantic's complaints as one error naming the first field (camelCase) and counting the rest."""
    items = err.errors()
    more = f" (and {len(items) - 1} more problem{'s' * (len(items) > 2)})" if len(items) > 1 else ""
    return InvalidSpecError(field_path(items[0]["loc"], prefix), describe(items[0]) + more)


@dataclass(frozen=True)
class Manifest:
    """One object of a manifest file: its name, labels and validated spec."""

    name: str
    labels: dict[str, str]
    spec: Any


def load_objects(path: Path, kind: str, model: type[BaseModel], flag: str = "-f") -> list[Manifest]:
    """Every `kind` object in a YAML file (possibly none), each validated by its API model.

    `flag` is the option that named the file, so a file problem names the option the user gave.
    """
    out = []
    for doc in _documents(path, flag):
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            continue
        if doc.get("apiVersion") not in (None, API_VERSION):
            raise GreenMatrixError("apiVersion", f"{doc.get('apiVersion')!r} is not supported", [API_VERSION])
        # A policy's fields are named as the planner names them (policy.constraints.maxCostPerHour), so
        # an error in a policy beside a workload does not read as the workload's own spec field.
        prefix = "policy" if kind == "OptimizationPolicy" else "spec"
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise InvalidSpecError(prefix, f"the {kind} has no spec mapping")
        try:
            # Strict, as the API server's schema is: `concurrency: "32"` or `true` is refused, not coerced.
            parsed = model.model_validate(spec, strict=True)
        except ValidationError as err:
            raise _schema_error(err, prefix) from None
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        labels = metadata.get("labels") if isinstance(metadata.get("labels"), dict) else {}
        out.append(
            Manifest(str(metadata.get("name", "")), {str(k): str(v) for k, v in labels.items()}, parsed)
        )
    return out


def load_manifest(path: Path, kind: str, model: type[BaseModel], flag: str = "-f") -> Manifest:
    """The one `kind` object in a YAML file."""
    found = load_objects(path, kind, model, flag)
    if not found:
        kinds = sorted({_what(d) for d in _documents(path, flag)})
        raise GreenMatrixError(
            "kind",
            f"{path} holds no {kind} (found {', '.join(kinds or ['nothing'])});"
            f" expected apiVersion {API_VERSION}",
            [kind],
        )
    if len(found) > 1:
        raise GreenMatrixError("kind", f"{path} holds {len(found)} {kind} objects; give one per file")
    return found[0]


def _what(doc: Any) -> str:
    """A YAML document as the user would name it: its kind, else what it is instead of an object."""
    if isinstance(doc, dict):
        # str(None) would read as a kind named "None".
        return str(doc["kind"]) if doc.get("kind") is not None else "a mapping without kind"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list"}
    return f"{names.get(type(doc), type(doc).__name__)} instead of a mapping"
