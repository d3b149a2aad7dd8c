"""skl2onnx converters that keep double inputs exact, for the three estimators that need it.

skl2onnx 1.20 converts these so that onnxruntime either refuses the graph or decides
differently from scikit-learn on double inputs:

- ``SimpleImputer`` becomes an ``Imputer`` node, for which onnxruntime has no double
  kernel. Here: ``Where(IsNaN(x), statistics, x)`` with the fitted statistics in double.
- Tree ensembles get float32 thresholds (``nodes_values``), and for histogram gradient
  boosting a double output onnxruntime cannot produce, plus a Python bool in an int list
  (protobuf's "Expected an int, got a boolean"). Here: ``TreeEnsembleClassifier`` from
  ai.onnx.ml opset 3 with double thresholds (``nodes_values_as_tensor``), every int
  attribute a real int, and the node's float probabilities cast to double after it (so
  every model's ``probabilities`` output is double).
- A random forest in scikit-learn compares ``float32(x)`` with double thresholds (its
  trees cast their input to float32); histogram gradient boosting compares double x.
  Here the forest's input is rounded through float32 first, so every row falls on the
  same side of every threshold as in scikit-learn.

The tree attributes are built with skl2onnx's own helpers, so node layout, leaf weights
and the binary-class convention are the ones its converter uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx.common.data_types import DoubleTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from skl2onnx.common.tree_ensemble import (
    add_tree_to_attribute_pairs,
    add_tree_to_attribute_pairs_hist_gradient_boosting,
    get_default_tree_classifier_attribute_pairs,
)
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer

_DOUBLE_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "class_weights", "base_values")
_INT_ATTRIBUTES = (
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_truenodeids",
    "nodes_falsenodeids", "nodes_missing_value_tracks_true", "class_treeids",
    "class_nodeids", "class_ids",
)  # fmt: skip


def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """``Where(IsNaN(x), statistics, x)``, in the input's own float type."""
    imputer: SimpleImputer = operator.raw_operator
    source, target = operator.inputs[0].full_name, operator.outputs[0].full_name
    dtype = (
        np.float64
        if operator.inputs[0].type.__class__.__name__.startswith("Double")
        else np.float32
    )
    fill = scope.get_unique_variable_name("imputer_statistics")
    values = np.asarray(imputer.statistics_, dtype=dtype).reshape(1, -1)
    container.add_initializer(fill, _onnx_type(dtype), list(values.shape), values.ravel().tolist())
    is_nan = scope.get_unique_variable_name("imputer_is_nan")
    container.add_node("IsNaN", [source], [is_nan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where", [is_nan, fill, source], [target], name=scope.get_unique_operator_name("Where")
    )


def convert_tree_classifier(scope: Any, operator: Any, container: Any) -> None:
    """A ``TreeEnsembleClassifier`` (ai.onnx.ml 3) with double thresholds, as described above."""
    model = operator.raw_operator
    attrs = get_default_tree_classifier_attribute_pairs()
    attrs["name"] = scope.get_unique_operator_name("TreeEnsembleClassifier")
    _class_labels(attrs, model.classes_)
    source = operator.inputs[0].full_name
    if isinstance(model, RandomForestClassifier):
        weight = 1.0 / len(model.estimators_)
        for tree_id, tree in enumerate(model.estimators_):
            add_tree_to_attribute_pairs(attrs, True, tree.tree_, tree_id, weight, 0, True)
        source = round_through_float32(scope, container, source)
    elif isinstance(model, HistGradientBoostingClassifier):
        per_iteration = model.n_trees_per_iteration_
        for iteration, trees in enumerate(model._predictors):
            for k, tree in enumerate(trees):
                tree_id = iteration * per_iteration + k
                add_tree_to_attribute_pairs_hist_gradient_boosting(
                    attrs, True, tree, tree_id, 1.0, k, False
                )
        attrs["base_values"] = list(np.ravel(model._baseline_prediction))
        attrs["post_transform"] = "LOGISTIC" if per_iteration == 1 else "SOFTMAX"
    else:  # pragma: no cover - registered for the two classes above only
        raise TypeError(f"no tree converter for {type(model).__name__}")
    for key in _INT_ATTRIBUTES:
        attrs[key] = [int(v) for v in attrs[key]]
    for key in _DOUBLE_ATTRIBUTES:
        values = attrs.pop(key, None)
        if values:
            tensor = numpy_helper.from_array(np.asarray(values, dtype=np.float64), key)
            attrs[f"{key}_as_tensor"] = tensor
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    floats = scope.get_unique_variable_name("probabilities_float")
    container.add_node(
        "TreeEnsembleClassifier", [source], [label, floats], op_domain="ai.onnx.ml",
        op_version=3, **attrs,
    )  # fmt: skip
    container.add_node(
        "Cast", [floats], [probabilities], to=TensorProto.DOUBLE,
        name=scope.get_unique_operator_name("Cast"),
    )  # fmt: skip


def tree_classifier_shapes(operator: Any) -> None:
    """skl2onnx's classifier shapes, with double probabilities whatever the input type."""
    calculate_linear_classifier_output_shapes(operator)
    operator.outputs[1].type = DoubleTensorType(operator.outputs[1].type.shape)


CONVERTERS = {
    SimpleImputer: convert_imputer,
    HistGradientBoostingClassifier: convert_tree_classifier,
    RandomForestClassifier: convert_tree_classifier,
}
"""Pass as ``custom_conversion_functions`` to ``skl2onnx.convert_sklearn``."""

SHAPE_CALCULATORS = {
    HistGradientBoostingClassifier: tree_classifier_shapes,
    RandomForestClassifier: tree_classifier_shapes,
}
"""Pass as ``custom_shape_calculators`` to ``skl2onnx.convert_sklearn``."""


def _class_labels(attrs: dict[str, Any], classes: np.ndarray) -> None:
    if all(isinstance(c, (int | np.integer)) and not isinstance(c, bool) for c in classes):
        attrs["classlabels_int64s"] = [int(c) for c in classes]
    else:
        attrs["classlabels_strings"] = [str(c) for c in classes]


def round_through_float32(scope: Any, container: Any, source: str) -> str:
    down: str = scope.get_unique_variable_name("as_float32")
    up: str = scope.get_unique_variable_name("rounded_through_float32")
    container.add_node(
        "Cast", [source], [down], to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast")
    )
    container.add_node(
        "Cast", [down], [up], to=TensorProto.DOUBLE, name=scope.get_unique_operator_name("Cast")
    )
    return up


def _onnx_type(dtype: Any) -> int:
    return TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT
