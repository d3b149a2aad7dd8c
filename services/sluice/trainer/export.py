"""Export a fitted pipeline to ONNX and prove the ONNX model gives the same probabilities.

The graph has one input per feature, shape ``[None, 1]``: ``tensor(double)`` for numeric
features (bools as 0/1), ``tensor(string)`` for categorical ones. Outputs are ``label``
(int64 or string, the predicted class) and ``probabilities`` (``tensor(double)``,
``[N, n_classes]``, columns in the order of ``card.classes``); no ZipMap.

Numbers stay double end to end so that the ONNX model decides exactly as scikit-learn
does: float inputs would move values that sit near a tree threshold to the other side
(measured: up to 0.3 in a probability for histogram gradient boosting). The converters
in ``converters.py`` make that possible.
"""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.pipeline import Pipeline

from sluice.core.errors import SluiceError
from sluice.trainer.converters import CONVERTERS, SHAPE_CALCULATORS
from sluice.trainer.errors import ParityFailed
from sluice.trainer.schema import Column

OPSETS = {"": 17, "ai.onnx.ml": 3}
PARITY_TOLERANCE = 1e-5
LABEL_OUTPUT, PROBABILITIES_OUTPUT = "label", "probabilities"


def to_onnx(pipeline: Pipeline, features: list[Column]) -> bytes:
    """The fitted ``pipeline`` as ONNX bytes, inputs and outputs named as the module says."""
    inputs = [
        (
            c.name,
            DoubleTensorType([None, 1]) if c.kind == "numeric" else StringTensorType([None, 1]),
        )
        for c in features
    ]
    classifier = pipeline.named_steps["classifier"]
    model = convert_sklearn(
        pipeline,
        initial_types=inputs,
        options={id(classifier): {"zipmap": False}},
        target_opset=OPSETS,
        custom_conversion_functions=CONVERTERS,
        custom_shape_calculators=SHAPE_CALCULATORS,
    )
    outputs = [o.name for o in model.graph.output]
    if outputs != [LABEL_OUTPUT, PROBABILITIES_OUTPUT]:
        raise SluiceError(f"unexpected ONNX outputs {outputs}")
    _restore_input_names(model, [c.name for c in features])
    onnx.checker.check_model(model, full_check=True)
    serialized: bytes = model.SerializeToString()
    return serialized


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


def parity(
    onnx_model: bytes, features: list[Column], x: pd.DataFrame, expected: np.ndarray
) -> float:
    """The largest |p_sklearn - p_onnx| over ``x``, from a real onnxruntime session."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    (got,) = session.run([PROBABILITIES_OUTPUT], onnx_feed(x, features))
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        raise ParityFailed(f"ONNX probabilities have shape {got.shape}, expected {expected.shape}")
    if not np.isfinite(got).all():
        return float("inf")
    return float(np.max(np.abs(got - expected), initial=0.0))


def check_parity(diff: float) -> None:
    """Refuse a model whose ONNX export does not reproduce scikit-learn."""
    if not diff <= PARITY_TOLERANCE:
        raise ParityFailed(
            f"the ONNX export differs from scikit-learn by up to {diff:.3g} in a probability "
            f"on the held-out set (tolerance {PARITY_TOLERANCE:g}); the version was not "
            "registered"
        )


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
