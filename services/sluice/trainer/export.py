"""Export a fitted pipeline to ONNX and prove the ONNX model gives the same answers.

The graph has one input per feature, shape ``[None, 1]``: ``tensor(double)`` for numeric
features (bools as 0/1), ``tensor(string)`` for categorical ones. A classifier's outputs
are ``label`` (int64 or string, the predicted class) and ``probabilities``
(``tensor(double)``, ``[N, n_classes]``, columns in the order of ``card.classes``; no
ZipMap); a regressor's is ``value`` (``tensor(double)``, ``[N, 1]``).

A pipeline that takes one matrix of numbers rather than named columns (no
``ColumnTransformer`` first) is converted with one ``[None, n_features]`` input, and a
``Concat`` of the per-feature inputs in front of it keeps the one-input-per-feature shape.

Numbers stay double end to end so that the ONNX model decides exactly as scikit-learn
does: float inputs would move values that sit near a tree threshold to the other side
(measured: up to 0.3 in a probability for histogram gradient boosting). The converters
in ``converters.py`` make that possible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from sluice.core.errors import SluiceError
from sluice.trainer import converters, regressors
from sluice.trainer.errors import ParityFailed
from sluice.trainer.schema import Column, Task

OPSETS = {"": 17, "ai.onnx.ml": 3}
PARITY_TOLERANCE = 1e-5
LABEL_OUTPUT, PROBABILITIES_OUTPUT, VALUE_OUTPUT = "label", "probabilities", "value"
OUTPUTS: dict[Task, list[str]] = {
    "classification": [LABEL_OUTPUT, PROBABILITIES_OUTPUT],
    "regression": [VALUE_OUTPUT],
}
CONVERTERS = {**converters.CONVERTERS, **regressors.CONVERTERS}
SHAPE_CALCULATORS = {**converters.SHAPE_CALCULATORS, **regressors.SHAPE_CALCULATORS}
_MATRIX = "sluice_feature_matrix"


def to_onnx(model: Any, features: list[Column], task: Task = "classification") -> bytes:
    """The fitted ``model`` as ONNX bytes, inputs and outputs named as the module says."""
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    by_column = takes_columns(model)
    if by_column:
        inputs = [
            (
                c.name,
                DoubleTensorType([None, 1]) if c.kind == "numeric" else StringTensorType([None, 1]),
            )
            for c in features
        ]
    else:
        inputs = [(_MATRIX, DoubleTensorType([None, len(features)]))]
    options = {id(final): {"zipmap": False}} if task == "classification" else {}
    onnx_model = convert_sklearn(
        model,
        initial_types=inputs,
        options=options,
        target_opset=OPSETS,
        custom_conversion_functions=CONVERTERS,
        custom_shape_calculators=SHAPE_CALCULATORS,
    )
    regressors.finish(onnx_model)
    outputs = [o.name for o in onnx_model.graph.output]
    if task == "regression" and len(outputs) == 1:
        _rename_output(onnx_model, outputs[0], VALUE_OUTPUT)
        outputs = [VALUE_OUTPUT]
    if outputs != OUTPUTS[task]:
        raise SluiceError(f"unexpected ONNX outputs {outputs} for a {task} model")
    if by_column:
        _restore_input_names(onnx_model, [c.name for c in features])
    else:
        _split_matrix(onnx_model, [c.name for c in features])
    onnx.checker.check_model(onnx_model, full_check=True)
    serialized: bytes = onnx_model.SerializeToString()
    return serialized


def takes_columns(model: Any) -> bool:
    """Whether ``model`` selects its inputs by column name (a ``ColumnTransformer`` first)."""
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    if isinstance(first, Pipeline):
        return takes_columns(first)
    return isinstance(first, ColumnTransformer)


def onnx_feed(x: pd.DataFrame, features: list[Column]) -> dict[str, np.ndarray]:
    """One ``[N, 1]`` array per feature: float64 for numeric, str objects for categorical."""
    feed: dict[str, np.ndarray] = {}
    for c in features:
        column = x[c.name].to_numpy()
        if c.kind == "numeric":
            feed[c.name] = column.astype(np.float64).reshape(-1, 1)
        else:
            feed[c.name] = np.array([str(v) for v in column], dtype=object).reshape(-1, 1)
    return feed


def onnx_answers(
    onnx_model: bytes, features: list[Column], x: pd.DataFrame, task: Task = "classification"
) -> np.ndarray:
    """What the ONNX model answers for ``x`` on a real onnxruntime session: probabilities
    ``[N, n_classes]`` or values ``[N]``, as double."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    output = PROBABILITIES_OUTPUT if task == "classification" else VALUE_OUTPUT
    (got,) = session.run([output], onnx_feed(x, features))
    got = np.asarray(got, dtype=np.float64)
    return got if task == "classification" else got.reshape(-1)


def parity(
    onnx_model: bytes,
    features: list[Column],
    x: pd.DataFrame,
    expected: np.ndarray,
    task: Task = "classification",
) -> float:
    """The largest |p_sklearn - p_onnx| (a regressor: |y_sklearn - y_onnx|) over ``x``."""
    return worst_row(onnx_answers(onnx_model, features, x, task), expected)[1]


def worst_row(got: np.ndarray, expected: np.ndarray) -> tuple[int, float]:
    """(row, largest absolute difference) of two answers; inf for a non-finite one.

    >>> worst_row(np.array([[0.2, 0.8], [0.5, 0.5]]), np.array([[0.2, 0.8], [0.4, 0.6]]))
    (1, 0.09999999999999998)
    """
    if got.shape != expected.shape:
        raise ParityFailed(f"ONNX answers have shape {got.shape}, expected {expected.shape}")
    if got.size == 0:
        return 0, 0.0
    diff = np.abs(got - expected).reshape(len(got), -1).max(axis=1)
    diff[~np.isfinite(got).reshape(len(got), -1).all(axis=1)] = np.inf
    row = int(np.argmax(diff))
    return row, float(diff[row])


def check_parity(diff: float, task: Task = "classification", where: str = "held-out set") -> None:
    """Refuse a model whose ONNX export does not reproduce scikit-learn."""
    what = "a probability" if task == "classification" else "a predicted value"
    if not diff <= PARITY_TOLERANCE:
        raise ParityFailed(
            f"the ONNX export differs from scikit-learn by up to {diff:.3g} in {what} "
            f"on the {where} (tolerance {PARITY_TOLERANCE:g}); the version was not "
            "registered"
        )


def _rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        for k, name in enumerate(node.output):
            if name == old:
                node.output[k] = new
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new
    for output in model.graph.output:
        if output.name == old:
            output.name = new


def _split_matrix(model: onnx.ModelProto, names: list[str]) -> None:
    """Replace the one matrix input by one ``[None, 1]`` double input per feature."""
    taken = {o for n in model.graph.node for o in n.output}
    clash = [n for n in names if n in taken]
    if clash:
        raise SluiceError(f"feature name {clash[0]!r} clashes with a name inside the ONNX graph")
    del model.graph.input[:]
    model.graph.input.extend(
        helper.make_tensor_value_info(n, TensorProto.DOUBLE, [None, 1]) for n in names
    )
    concat = helper.make_node("Concat", names, [_MATRIX], axis=1, name="sluice_features")
    model.graph.node.insert(0, concat)


def _restore_input_names(model: onnx.ModelProto, names: list[str]) -> None:
    """Give every input its column's name: skl2onnx replaces characters such as ``/``.

    An ONNX name may be any string; the inputs must be named as the card's features.
    """
    renamed = {i.name: name for i, name in zip(model.graph.input, names, strict=True)}
    taken = {o for n in model.graph.node for o in n.output} | {
        t.name for t in model.graph.initializer
    }
    for old, new in renamed.items():
        if old != new and new in taken:
            raise SluiceError(f"feature name {new!r} clashes with a name inside the ONNX graph")
    for graph_input in model.graph.input:
        graph_input.name = renamed[graph_input.name]
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
