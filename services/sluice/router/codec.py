"""The two request shapes the router speaks, as one column-oriented :class:`Frame`, and the
answers read back. Pure functions of plain values.

- KServe V1: ``{"instances": [{"feature": value, ...}, ...]}``; an instance may carry only
  its entity id, or some of the features: the gaps are :data:`MISSING` until filled.
- Open Inference Protocol V2: ``{"id"?, "parameters"?, "inputs": [tensor, ...], "outputs"?}``
  with one ``[N]`` or ``[N, 1]`` tensor per feature (an entity id may be one of them).

Each version gets only the features it takes (the model server refuses unknown ones): the
client's own values unchanged, filled ones with the datatype the version's metadata gives.
A request that already is exactly that (every feature given, nothing else) is forwarded
as the bytes the client sent, not serialised again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

Protocol = Literal["v1", "v2"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A cell the request did not carry (yet)."""


class CodecError(ValueError):
    """The body is not a request (or an answer) of the protocol; the message says where."""


@dataclass(slots=True)
class Frame:
    """A request's rows, column by column."""

    protocol: Protocol
    rows: int
    columns: dict[str, list[Any]]
    """Feature (or entity key) -> one value per row; :data:`MISSING` where absent."""
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """V2: the client's tensors by name, forwarded as sent."""
    envelope: dict[str, Any] = field(default_factory=dict)
    """V2: ``id``, ``parameters`` and ``outputs`` of the request, forwarded as sent."""
    raw: bytes | None = None
    """The body as the client sent it, while it holds nothing a version's body would
    leave out (cleared by the first :meth:`fill`)."""

    def gaps(self, features: Iterable[str]) -> dict[str, list[int]]:
        """The rows each feature is missing in (features the request has fully are left out).

        >>> f = parse_v1({"instances": [{"id": "a", "x": 1}, {"id": "b"}]}, max_rows=8)
        >>> f.gaps(["x", "y"])
        {'x': [1], 'y': [0, 1]}
        """
        out: dict[str, list[int]] = {}
        for name in features:
            col = self.columns.get(name)
            if col is None:
                out[name] = list(range(self.rows))
                continue
            holes = [i for i, v in enumerate(col) if v is MISSING]
            if holes:
                out[name] = holes
        return out

    def fill(self, name: str, row: int, value: Any) -> None:
        self.raw = None
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = [MISSING] * self.rows
        col[row] = value

    def exactly(self, features: Sequence[str]) -> bool:
        """Whether the request carries ``features`` in every row, and nothing else.

        >>> f = parse_v1({"instances": [{"x": 1, "y": 2}, {"x": 3}]}, max_rows=8)
        >>> f.exactly(["x", "y"]), f.exactly(["x"])
        (False, False)
        """
        columns = self.columns
        return len(columns) == len(features) and all(
            name in columns and MISSING not in columns[name] for name in features
        )

    def seen(self, features: Sequence[str]) -> dict[str, list[Any]]:
        """The values a version taking ``features`` saw (the prediction log's ``x``)."""
        return {name: self.columns[name] for name in features if name in self.columns}


def parse_v1(body: Any, max_rows: int, raw: bytes | None = None) -> Frame:
    """``{"instances": [...]}`` -> a Frame; ``raw``: the bytes ``body`` was parsed from."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise CodecError("the body must be an object with 'instances': a list of objects")
    instances: list[Any] = body["instances"]
    _check_rows(len(instances), max_rows)
    columns: dict[str, list[Any]] = {}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise CodecError(f"instance {i} must be an object of feature: value")
        for name, value in instance.items():
            col = columns.get(name)
            if col is None:
                col = columns[name] = [MISSING] * len(instances)
            col[i] = value
    return Frame("v1", len(instances), columns, raw=raw if len(body) == 1 else None)


def parse_v2(body: Any, max_rows: int, raw: bytes | None = None) -> Frame:
    """A V2 inference request -> a Frame (each input one column of ``[N]`` or ``[N, 1]``);
    ``raw``: the bytes ``body`` was parsed from."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise CodecError("the body must be an object with 'inputs': a list of tensors")
    rows = -1
    columns: dict[str, list[Any]] = {}
    tensors: dict[str, dict[str, Any]] = {}
    for tensor in body["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise CodecError("every input must be an object with a 'name'")
        name, shape, data = tensor["name"], tensor.get("shape"), tensor.get("data")
        if (
            not isinstance(shape, list)
            or len(shape) not in (1, 2)
            or not all(type(d) is int for d in shape)
            or (len(shape) == 2 and shape[1] != 1)
        ):
            raise CodecError(f"input {name!r}: shape must be [N] or [N, 1]")
        if not isinstance(data, list):
            raise CodecError(f"input {name!r}: data must be a list")
        if data and type(data[0]) is list:
            data = [v[0] if type(v) is list and len(v) == 1 else v for v in data]
        if len(data) != shape[0]:
            raise CodecError(f"input {name!r}: shape {shape} needs {shape[0]} values")
        if rows < 0:
            rows = shape[0]
            _check_rows(rows, max_rows)
        elif shape[0] != rows:
            raise CodecError(f"input {name!r} has {shape[0]} rows, the others {rows}")
        columns[name] = list(data)
        tensors[name] = tensor
    if rows < 0:
        raise CodecError("the request has no inputs")
    envelope = {k: body[k] for k in _ENVELOPE if k in body}
    if len(envelope) + 1 != len(body) or len(tensors) != len(body["inputs"]):
        raw = None  # keys a version's body leaves out, or an input sent twice
    return Frame("v2", rows, columns, tensors, envelope, raw)


_ENVELOPE = ("id", "parameters", "outputs")


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise CodecError("the batch has no rows")
    if rows > max_rows:
        raise CodecError(f"batch of {rows} rows is over the limit of {max_rows}")


def concat(frames: Sequence[Frame], features: Sequence[str]) -> Frame:
    """One frame of every row of ``frames`` (one protocol, ``features`` filled in each),
    holding only ``features``. A V2 input keeps the clients' datatype where every frame
    sent it with the same one; otherwise the version's datatype applies (see v2_body).

    >>> a = parse_v1({"instances": [{"x": 1, "y": 2}]}, max_rows=8)
    >>> b = parse_v1({"instances": [{"x": 3, "y": 4}, {"x": 5, "y": 6}]}, max_rows=8)
    >>> v1_body(concat([a, b], ["x"]), ["x"])
    b'{"instances":[{"x":1},{"x":3},{"x":5}]}'
    """
    rows = sum(f.rows for f in frames)
    columns = {name: [v for f in frames for v in f.columns[name]] for name in features}
    tensors: dict[str, dict[str, Any]] = {}
    for name in features:
        sent = [f.tensors.get(name) for f in frames]
        kinds = {None if t is None else t.get("datatype") for t in sent}
        if len(kinds) == 1 and None not in kinds:
            (datatype,) = kinds
            data = columns[name]
            tensors[name] = {"name": name, "shape": [rows, 1], "datatype": datatype, "data": data}
    return Frame(frames[0].protocol, rows, columns, tensors)


def v1_body(frame: Frame, features: Sequence[str]) -> bytes:
    """The V1 request for a version taking ``features`` (all filled by now).

    >>> f = parse_v1({"instances": [{"id": "a", "x": 1, "y": "b"}]}, max_rows=8)
    >>> v1_body(f, ["x", "y"])
    b'{"instances":[{"x":1,"y":"b"}]}'
    """
    if frame.raw is not None and frame.exactly(features):
        return frame.raw
    cols = [(name, frame.columns[name]) for name in features]
    instances = [{name: col[i] for name, col in cols} for i in range(frame.rows)]
    return orjson.dumps({"instances": instances})


def v2_body(frame: Frame, features: Sequence[str], datatypes: Mapping[str, str]) -> bytes:
    """The V2 request for a version taking ``features``: the client's tensors as sent,
    the filled ones as ``[N, 1]`` of the version's datatype."""
    if frame.raw is not None and frame.exactly(features):
        return frame.raw
    inputs = []
    for name in features:
        tensor = frame.tensors.get(name)
        if tensor is None or any(v is MISSING for v in frame.columns[name]):
            tensor = {
                "name": name,
                "shape": [frame.rows, 1],
                "datatype": datatypes.get(name, "BYTES"),
                "data": frame.columns[name],
            }
        inputs.append(tensor)
    return orjson.dumps({**frame.envelope, "inputs": inputs})


def read_answer(
    protocol: Protocol, body: bytes, classes: Sequence[str] | None
) -> tuple[list[str], list[float]]:
    """(labels, scores) from a model server's answer; the score is the positive-class
    probability of a binary model (the second of ``classes``), else the top probability.
    A regressor's answer (``value``) has no label (``""``): its score is the value.

    >>> read_answer("v1", b'{"predictions":[{"label":1,"probabilities":{"0":0.3,"1":0.7}}]}',
    ...             ["0", "1"])
    (['1'], [0.7])
    >>> read_answer("v2", b'{"outputs":[{"name":"label","shape":[1],"datatype":"INT64",'
    ...   b'"data":[0]},{"name":"probabilities","shape":[1,2],"datatype":"FP32",'
    ...   b'"data":[0.8,0.2]}]}', ["0", "1"])
    (['0'], [0.2])
    >>> read_answer("v1", b'{"predictions":[{"value":151.5}]}', None)
    ([''], [151.5])
    >>> read_answer("v2", b'{"outputs":[{"name":"value","shape":[2,1],"datatype":"FP64",'
    ...   b'"data":[151.5,80.0]}]}', None)
    (['', ''], [151.5, 80.0])
    """
    try:
        doc = orjson.loads(body)
        if protocol == "v1":
            return _read_v1(doc, classes)
        return _read_v2(doc)
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError) as exc:
        raise CodecError(f"the upstream's answer is not a {protocol} prediction: {exc}") from exc


def _read_v1(doc: Any, classes: Sequence[str] | None) -> tuple[list[str], list[float]]:
    labels, scores = [], []
    for pred in doc["predictions"]:
        if "value" in pred:
            labels.append("")
            scores.append(float(pred["value"]))
            continue
        labels.append(str(pred["label"]))
        probs: dict[str, float] = pred["probabilities"]
        if len(probs) == 2:
            positive = classes[1] if classes and len(classes) == 2 else list(probs)[1]
            scores.append(float(probs[positive]))
        else:
            scores.append(float(max(probs.values())))
    return labels, scores


def _read_v2(doc: Any) -> tuple[list[str], list[float]]:
    # The probabilities' columns follow the card's classes: column 1 is the positive class.
    outputs = {o["name"]: o for o in doc["outputs"]}
    if "value" in outputs and "label" not in outputs:
        data = outputs["value"]["data"]
        if data and isinstance(data[0], list):
            data = [v for row in data for v in row]
        return [""] * len(data), [float(v) for v in data]
    labels = [str(v[0] if isinstance(v, list) else v) for v in outputs["label"]["data"]]
    probs = outputs["probabilities"]
    data = probs["data"]
    if data and isinstance(data[0], list):
        data = [p for row in data for p in row]
    width = probs["shape"][-1] if len(probs["shape"]) > 1 else 1
    rows = [data[i : i + width] for i in range(0, len(data), width)]
    if width == 2:
        return labels, [float(r[1]) for r in rows]
    return labels, [float(max(r)) for r in rows]
