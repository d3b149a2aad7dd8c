"""Open Inference Protocol (V2) infer request and response documents: pure functions.

``parse_infer_request`` turns a parsed JSON body (plus the binary tail of Triton's binary
tensor data extension, if any) into numpy inputs and the outputs asked for;
``infer_response`` builds the response document and its binary tail. Neither knows the
model: the service checks the inputs against the model's schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sluice.model_server.codec import (
    NUMPY_TYPES,
    CodecError,
    JsonTensor,
    Tensor,
    check_shape,
    decode_binary,
    encode_binary,
    encode_tensor,
)

HEADER_LENGTH = "inference-header-content-length"
"""HTTP header giving the JSON part's length when binary tensor data follows it."""


@dataclass(frozen=True)
class InferRequest:
    """A parsed V2 infer request."""

    id: str | None
    inputs: dict[str, Tensor]
    outputs: dict[str, bool] | None = None
    """Requested output name -> binary or not; None: every output."""
    binary_output: bool = False
    """The request-level default for outputs (``parameters.binary_data_output``)."""
    parameters: dict[str, Any] = field(default_factory=dict)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary tail) of a body, using the Inference-Header-Content-Length header.

    >>> split_body(b'{"a":1}xyz', "7")
    (b'{"a":1}', b'xyz')
    >>> split_body(b'{"a":1}', None)
    (b'{"a":1}', b'')
    """
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise CodecError(
            f"Inference-Header-Content-Length {header_length!r} does not fit a body "
            f"of {len(body)} bytes"
        )
    size = int(header_length)
    return body[:size], body[size:]


def parse_infer_request(doc: Any, binary: bytes = b"") -> InferRequest:
    """A JSON infer request (already parsed) -> inputs as numpy arrays, outputs wanted."""
    if not isinstance(doc, dict):
        raise CodecError("the request body must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise CodecError("'id' must be a string")
    parameters = doc.get("parameters") if doc.get("parameters") is not None else {}
    if not isinstance(parameters, dict):
        raise CodecError("'parameters' must be an object")
    entries = doc.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise CodecError("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, Tensor] = {}
    offset = 0
    for i, entry in enumerate(entries):
        name = entry.get("name") if type(entry) is dict else None
        if type(name) is not str:
            raise CodecError(f"inputs[{i}] must be an object with a string 'name'")
        if name in inputs:
            raise CodecError(f"input {name!r} is given twice")
        shape = check_shape(name, entry.get("shape"))
        size = _binary_size(name, entry) if "parameters" in entry else None
        if size is None:
            datatype, data = entry.get("datatype"), entry.get("data")
            if type(datatype) is str and datatype in NUMPY_TYPES and type(data) is list:
                inputs[name] = JsonTensor(datatype, shape, data)
            else:
                inputs[name] = _json_tensor(name, entry, shape)  # raises, saying why
        else:
            if offset + size > len(binary):
                raise CodecError(f"input {name!r}: binary data is shorter than binary_data_size")
            chunk = binary[offset : offset + size]
            inputs[name] = decode_binary(name, entry["datatype"], shape, chunk)
            offset += size
    if offset != len(binary):
        raise CodecError(f"{len(binary) - offset} bytes of binary data belong to no input")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise CodecError("parameters.binary_data_output must be true or false")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(doc.get("outputs"), binary_output),
        binary_output=binary_output,
        parameters=parameters,
    )


def _json_tensor(name: str, entry: Mapping[str, Any], shape: tuple[int, ...]) -> JsonTensor:
    datatype, data = entry.get("datatype"), entry.get("data")
    if not isinstance(datatype, str) or datatype not in NUMPY_TYPES:
        raise CodecError(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(NUMPY_TYPES)}"
        )
    if not isinstance(data, list):
        raise CodecError(f"input {name!r}: data must be a list")
    return JsonTensor(datatype, shape, data)


def _binary_size(name: str, entry: Mapping[str, Any]) -> int | None:
    params = entry["parameters"] if entry.get("parameters") is not None else {}
    if not isinstance(params, dict):
        raise CodecError(f"input {name!r}: 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise CodecError(f"input {name!r}: binary_data_size must be a non-negative integer")
    if not isinstance(entry.get("datatype"), str):
        raise CodecError(f"input {name!r}: 'datatype' must be a string")
    return size


def _requested_outputs(entries: Any, binary_default: bool) -> dict[str, bool] | None:
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise CodecError("'outputs' must be a list of {\"name\": ...} objects")
    wanted: dict[str, bool] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CodecError(f"outputs[{i}] must be an object with a string 'name'")
        params = entry["parameters"] if entry.get("parameters") is not None else {}
        binary = params.get("binary_data", binary_default) if isinstance(params, dict) else None
        if not isinstance(binary, bool):
            raise CodecError(f"output {entry['name']!r}: binary_data must be true or false")
        wanted[entry["name"]] = binary
    return wanted


def select_outputs(request: InferRequest, available: Sequence[str]) -> dict[str, bool]:
    """Output name -> binary, in the order asked for (all outputs when none were named).

    >>> select_outputs(InferRequest(None, {}, {"label": False}), ["label", "probabilities"])
    {'label': False}
    """
    if request.outputs is None:
        return dict.fromkeys(available, request.binary_output)
    unknown = [name for name in request.outputs if name not in available]
    if unknown:
        raise CodecError(
            f"unknown output {', '.join(map(repr, unknown))}; the model has "
            f"{', '.join(map(repr, available))}"
        )
    return request.outputs


def infer_response(
    model: str,
    version: str,
    request_id: str,
    outputs: Mapping[str, np.ndarray],
    binary: Mapping[str, bool],
) -> tuple[dict[str, Any], bytes]:
    """(response document, binary tail) for the outputs named in ``binary``, in that order."""
    tensors = []
    tail: list[bytes] = []
    for name, as_binary in binary.items():
        arr = outputs[name]
        tensor = encode_tensor(name, arr) if not as_binary else _binary_tensor(name, arr, tail)
        tensors.append(tensor)
    doc = {"model_name": model, "model_version": version, "id": request_id, "outputs": tensors}
    return doc, b"".join(tail)


def _binary_tensor(name: str, arr: np.ndarray, tail: list[bytes]) -> dict[str, Any]:
    raw = encode_binary(arr)
    tail.append(raw)
    tensor = encode_tensor(name, arr[:0])
    tensor["shape"] = list(arr.shape)
    del tensor["data"]
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor
