"""Building blocks shared by the GreenMatrix custom resources.

These mirror the Kubernetes API conventions users already know (metav1.Condition,
metav1.LabelSelector, cross-version object references) so that tools such as
`kubectl wait`, Flux/kstatus and Argo CD read GreenMatrix objects without special cases.
"""

from __future__ import annotations

import functools
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "greenmatrix.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# metav1.Condition's reason pattern: tools validate it, so the operator never writes anything else.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# A Go-style duration limited to what people write in manifests: "30s", "5m", "1h30m", "2d" is not Go.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """Seconds in a Duration as manifests and flags write it ("30s", "5m", "1h30m"); ValueError otherwise."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h30m)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


class Schema(BaseModel):
    """Base for every object in a GreenMatrix manifest: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest or a status patch (camelCase, unset fields omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    # The CLI must accept every manifest `kubectl apply` gets admitted (tests/lab/test_crd_agreement.py),
    # and two things reach the API server differently from how YAML reads them. The API server prunes
    # null from every field and map value its schema does not mark nullable, so `precision: null` or
    # `matchLabels: {team: null}` means the field is absent and its default applies (an unknown field
    # stays unknown, null or not). And kubectl's YAML-to-JSON conversion writes an integral float as an
    # integer, so `maxReplicas: 4.0` or `1e3` arrives as an integer that a strict int field would refuse.
    @model_validator(mode="before")
    @classmethod
    def _as_the_api_server_reads_it(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = _field_kinds(cls)
        read = {}
        for key, value in data.items():
            if value is None and key in fields:
                continue
            integer, mapping = fields.get(key, (False, False))
            if integer and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif mapping and isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}
            read[key] = value
        return read


@functools.cache
def _field_kinds(model: type[BaseModel]) -> dict[str, tuple[bool, bool]]:
    """Each field of `model` by wire and Python name: whether it holds an integer, whether a map."""
    kinds = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        arms = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
        kinds[name] = (int in arms, any(get_origin(arm) is dict for arm in arms))
        if info.alias:
            kinds[info.alias] = kinds[name]
    return kinds


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry: a CEL rule the API server checks at admission."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def cel_rules(*rules: dict[str, str]) -> ConfigDict:
    """A model's `x-kubernetes-validations`: its `cel` rules, which the generated CRD carries."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        examples=["30s", "5m", "1h30m"],
    ),
]


class Condition(Schema):
    """A metav1.Condition: one aspect of the object's current state."""

    type: Annotated[
        str,
        Field(
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ]
    """Type of condition in CamelCase, e.g. Ready or InvalidSpec."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition: True, False or Unknown."""
    observed_generation: Annotated[int | None, Field(ge=0)] = None
    """The .metadata.generation that the condition was set based upon."""
    last_transition_time: str
    """Last time the condition changed status (RFC 3339)."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    """Programmatic identifier, in CamelCase, of the reason for the last transition."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Human-readable message with details about the transition."""


SELECTOR_VALUES_MESSAGE = "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"


class Interval(Schema):
    """A prediction with its 80% interval: the truth falls between p10 and p90 four times in five."""

    p10: float
    """10th percentile."""
    p50: float
    """Median: the point prediction."""
    p90: float
    """90th percentile."""


class LabelSelectorRequirement(Schema):
    """A label selector requirement: a key, an operator and values."""

    key: Annotated[str, Field(min_length=1, max_length=317)]
    """The label key that the selector applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values: In, NotIn, Exists or DoesNotExist."""
    values: list[Annotated[str, Field(max_length=63)]] | None = None
    """Values for In and NotIn (must be non-empty); must be empty for Exists and DoesNotExist."""

    model_config = cel_rules(
        cel(
            "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
            " : (!has(self.values) || size(self.values) == 0)",
            SELECTOR_VALUES_MESSAGE,
        )
    )

    # Restates the CEL rule for manifests read without an API server (the CLI).
    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(SELECTOR_VALUES_MESSAGE)
        return self


class LabelSelector(Schema):
    """A metav1.LabelSelector. An empty selector selects every object in the namespace."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = None
    """Labels that must all match exactly."""
    match_expressions: list[LabelSelectorRequirement] | None = None
    """Requirements that must all hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an object with these labels is selected (Kubernetes semantics)."""
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in (req.values or [])):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in (req.values or []):
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class TargetRef(Schema):
    """The workload that serves or runs this profile (a scale-subresource target, as in VPA and KEDA)."""

    api_version: Annotated[str, Field(max_length=253)] = "apps/v1"
    """API version of the target, e.g. apps/v1."""
    kind: Literal["Deployment", "StatefulSet"]
    """Kind of the target: Deployment or StatefulSet."""
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    """Name of the target in the same namespace."""
