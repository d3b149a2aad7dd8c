"""An ONNX file from another tool, reshaped into the graph every Sluice version has.

What Sluice serves (``export.py``): one ``[None, 1]`` input per feature named as the
feature, and the outputs ``label`` + ``probabilities`` (classifier) or ``value``
(regressor), probabilities and values in double. A file from skl2onnx, or any tool that
writes the ai.onnx.ml classifiers, is reshaped so:

- inputs: kept when every feature already has its own input; one ``[None, n]`` matrix
  input becomes one input per feature joined by a ``Concat`` (in the sample's column order);
- a classifier's ``ZipMap`` (a list of {class: probability}) is removed and its input
  tensor answered instead; the class labels come from the ZipMap or the classifier node;
- float outputs are cast to double; outputs other than those are dropped.

The reshaped graph is then run beside the original on the sample (``original_answers``):
the import refuses it unless both agree within the parity tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper

from sluice.core.errors import InvalidInput
from sluice.trainer.schema import Column, Task

_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_strings", "classlabels_ints")
_NUMERIC = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
            TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}  # fmt: skip


@dataclass(frozen=True)
class Reshaped:
    onnx_model: bytes
    task: Task
    classes: list[Any]
    """Class labels in the order of the probabilities (empty for a regressor)."""


def reshape(raw: bytes, columns: list[Column]) -> Reshaped:
    """The file's graph with Sluice's inputs and outputs; InvalidInput saying what is off."""
    try:
        model = onnx.load_from_string(raw)
    except Exception as exc:
        raise InvalidInput(f"not an ONNX model: {exc}") from None
    graph = model.graph
    elem_types = _elem_types(model)
    task, outputs, classes = _outputs(model, elem_types)
    _free_names(graph, set(outputs) - set(outputs.values()))
    nodes = list(graph.node)
    renames: dict[str, str] = {}
    tail: list[onnx.NodeProto] = []
    for role, name in outputs.items():
        source = name
        zipmap = next((n for n in nodes if n.op_type == "ZipMap" and name in n.output), None)
        if zipmap is not None:
            nodes.remove(zipmap)
            source = zipmap.input[0]
        elem = elem_types.get(source, TensorProto.UNDEFINED)
        elem_types[role] = TensorProto.DOUBLE if role != "label" else elem
        if role != "label" and elem != TensorProto.DOUBLE:
            tail.append(helper.make_node("Cast", [source], [role], to=TensorProto.DOUBLE))
        elif source != role:
            renames[source] = role
    for node in nodes:
        for k, out in enumerate(node.output):
            node.output[k] = renames.get(out, out)
        for k, inp in enumerate(node.input):
            node.input[k] = renames.get(inp, inp)
    del graph.node[:]
    graph.node.extend([*nodes, *tail])
    del graph.output[:]
    graph.output.extend(_output_info(role, len(classes), elem_types) for role in outputs)
    _reshape_inputs(graph, columns)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise InvalidInput(f"the ONNX model does not check after reshaping: {exc}") from None
    return Reshaped(model.SerializeToString(), task, classes)


def _free_names(graph: onnx.GraphProto, names: set[str]) -> None:
    """Rename inner tensors called ``label`` etc. (skl2onnx names one so) out of the way."""
    moved = {n: f"{n}_inner" for n in names}
    for node in graph.node:
        for k, out in enumerate(node.output):
            node.output[k] = moved.get(out, out)
        for k, inp in enumerate(node.input):
            node.input[k] = moved.get(inp, inp)


def _outputs(
    model: onnx.ModelProto, elem_types: dict[str, int]
) -> tuple[Task, dict[str, str], list[Any]]:
    """(task, role -> output name, classes) from the graph's outputs."""
    names = [o.name for o in model.graph.output]
    label = next((n for n in names if n in ("label", "output_label")), None)
    proba = next((n for n in names if n in ("probabilities", "output_probability")), None)
    if label and proba:
        return "classification", {"label": label, "probabilities": proba}, _classes(model, proba)
    numeric = [o.name for o in model.graph.output if o.type.HasField("tensor_type")]
    numeric = [n for n in numeric if elem_types.get(n) in _NUMERIC]
    if len(names) == 1 and numeric:
        return "regression", {"value": names[0]}, []
    raise InvalidInput(
        f"cannot tell what the ONNX model answers from its outputs {names}: Sluice serves "
        "a classifier (outputs 'label' and 'probabilities', or skl2onnx's 'output_label' and "
        "'output_probability') or a regressor (one numeric output)"
    )


def _classes(model: onnx.ModelProto, proba: str) -> list[Any]:
    nodes = list(model.graph.node)
    zipmap = [n for n in nodes if n.op_type == "ZipMap" and proba in n.output]
    for node in zipmap or [n for n in nodes if n.domain == "ai.onnx.ml"]:
        for attr in node.attribute:
            if attr.name in _CLASS_ATTRIBUTES:
                values = helper.get_attribute_value(attr)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    raise InvalidInput(
        "cannot find the class labels in the ONNX model (no ZipMap and no ai.onnx.ml "
        "classifier node names them)"
    )


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """The element type of every tensor the graph declares or shape inference finds."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:
        inferred = model.graph
    infos = [*inferred.value_info, *model.graph.output, *model.graph.input]
    return {
        i.name: int(i.type.tensor_type.elem_type) for i in infos if i.type.HasField("tensor_type")
    }


def _output_info(role: str, n_classes: int, elem_types: dict[str, int]) -> Any:
    if role == "label":
        return helper.make_tensor_value_info("label", elem_types["label"], [None])
    shape = [None, n_classes] if role == "probabilities" else [None, 1]
    return helper.make_tensor_value_info(role, TensorProto.DOUBLE, shape)


def _reshape_inputs(graph: onnx.GraphProto, columns: list[Column]) -> None:
    names = [c.name for c in columns]
    inputs = {i.name: i for i in graph.input}
    if set(names) <= set(inputs) and len(inputs) == len(names):
        return
    if len(inputs) == 1:
        (matrix,) = inputs.values()
        dims = matrix.type.tensor_type.shape.dim
        width = dims[1].dim_value if len(dims) == 2 else 0
        if width == len(names):
            elem = matrix.type.tensor_type.elem_type
            text = [c.name for c in columns if c.kind == "categorical"]
            if text and elem != TensorProto.STRING:
                raise InvalidInput(
                    f"the ONNX model takes one matrix of numbers but the sample's column "
                    f"{text[0]!r} is text"
                )
            del graph.input[:]
            graph.input.extend(helper.make_tensor_value_info(n, elem, [None, 1]) for n in names)
            concat = helper.make_node(
                "Concat", names, [matrix.name], axis=1, name="sluice_features"
            )
            graph.node.insert(0, concat)
            return
    raise InvalidInput(
        f"the ONNX model's inputs {list(inputs)} do not match the sample's feature columns "
        f"{names}: name one input per feature, or take one [N, {len(names)}] matrix"
    )


def original_answers(raw: bytes, x: pd.DataFrame, reshaped: Reshaped) -> np.ndarray:
    """What the file as given answers for ``x``: probabilities in class order, or values."""
    import onnxruntime as ort

    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) == 1 and len(x.columns) > 1:
        dtype = _numpy_type(inputs[0].type)
        feed = {inputs[0].name: x.to_numpy(dtype=dtype)}
    else:
        feed = {i.name: _column(x[i.name], _numpy_type(i.type)) for i in inputs}
    got = session.run(None, feed)
    by_name = dict(zip([o.name for o in session.get_outputs()], got, strict=True))
    if reshaped.task == "regression":
        return np.asarray(next(iter(by_name.values())), dtype=np.float64).reshape(-1)
    proba = by_name.get("probabilities", by_name.get("output_probability"))
    if isinstance(proba, list):  # ZipMap: one {class: probability} per row
        return np.array([[row[c] for c in reshaped.classes] for row in proba], dtype=np.float64)
    return np.asarray(proba, dtype=np.float64)


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(string)": object}  # fmt: skip


def _numpy_type(onnx_type: str) -> Any:
    return _NUMPY_TYPES.get(onnx_type, np.float64)


def _column(values: pd.Series, dtype: Any) -> np.ndarray:
    if dtype is object:
        return np.array([str(v) for v in values], dtype=object).reshape(-1, 1)
    return values.to_numpy(dtype=dtype).reshape(-1, 1)
