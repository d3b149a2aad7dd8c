"""skl2onnx converters that keep tree-ensemble regressors exact on double inputs.

skl2onnx 1.20 turns a tree regressor into ``TreeEnsembleRegressor`` (ai.onnx.ml 3), whose
output is float32 in onnxruntime whatever the input: a prediction of 300 then carries an
error of about 2e-5, over the parity tolerance. Here every regressor becomes the newer
``TreeEnsemble`` (ai.onnx.ml 5), which takes thresholds and leaf weights in double and
answers in double:

- ``RandomForestRegressor`` / ``ExtraTreesRegressor`` / ``DecisionTreeRegressor``: the
  trees' mean. Their input is rounded through float32 first, as scikit-learn's trees do.
- ``GradientBoostingRegressor``: the initial estimate plus ``learning_rate`` times the
  trees' sum (input rounded through float32 as well).
- ``HistGradientBoostingRegressor``: the baseline plus the trees' sum, on double input,
  with each node's own direction for missing values.

Splits are ``x <= threshold`` (scikit-learn's rule) in every case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor

from sluice.trainer.converters import round_through_float32

BRANCH_LEQ = 0
AGGREGATE_SUM = 1
STAND_IN_DOMAIN = "sluice.ml5"
"""skl2onnx refuses to write ai.onnx.ml 5 itself: nodes are written in this domain and
:func:`finish` moves them to ai.onnx.ml, whose opset it raises to 5."""


@dataclass
class _Ensemble:
    """The flat arrays of a ``TreeEnsemble`` node, filled one tree at a time."""

    roots: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leafs: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leafs: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add_tree(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        missing_left: np.ndarray,
        scale: float,
    ) -> None:
        """One tree given as scikit-learn's parallel node arrays (a leaf has ``left < 0``
        in a decision tree, ``left == 0`` in a histogram tree: pass ``left < 0`` there)."""
        is_leaf = left < 0
        branch_at: dict[int, int] = {}
        leaf_at: dict[int, int] = {}
        for node in range(len(left)):
            if is_leaf[node]:
                leaf_at[node] = len(self.weights)
                self.weights.append(float(value[node]) * scale)
        if is_leaf[0]:  # a stump with no split: one branch whose two sides are the leaf
            self.roots.append(len(self.features))
            self._branch(0, 0.0, 0, (leaf_at[0], 1), (leaf_at[0], 1))
            return
        for node in range(len(left)):
            if not is_leaf[node]:
                branch_at[node] = len(self.features) + len(branch_at)
        self.roots.append(branch_at[0])
        for node in branch_at:

            def target(child: int) -> tuple[int, int]:
                return (leaf_at[child], 1) if is_leaf[child] else (branch_at[child], 0)

            self._branch(
                int(feature[node]), float(threshold[node]), int(bool(missing_left[node])),
                target(int(left[node])), target(int(right[node])),
            )  # fmt: skip

    def _branch(
        self, feature: int, split: float, missing: int, yes: tuple[int, int], no: tuple[int, int]
    ) -> None:
        self.features.append(feature)
        self.splits.append(split)
        self.missing_true.append(missing)
        self.true_ids.append(yes[0])
        self.true_leafs.append(yes[1])
        self.false_ids.append(no[0])
        self.false_leafs.append(no[1])

    def attributes(self) -> dict[str, Any]:
        n = len(self.features)
        return {
            "aggregate_function": AGGREGATE_SUM,
            "post_transform": 0,
            "n_targets": 1,
            "tree_roots": self.roots,
            "nodes_featureids": self.features,
            "nodes_splits": _doubles("nodes_splits", self.splits),
            "nodes_modes": numpy_helper.from_array(
                np.full(n, BRANCH_LEQ, dtype=np.uint8), "nodes_modes"
            ),
            "nodes_missing_value_tracks_true": self.missing_true,
            "nodes_truenodeids": self.true_ids,
            "nodes_trueleafs": self.true_leafs,
            "nodes_falsenodeids": self.false_ids,
            "nodes_falseleafs": self.false_leafs,
            "leaf_targetids": [0] * len(self.weights),
            "leaf_weights": _doubles("leaf_weights", self.weights),
        }


def _doubles(name: str, values: list[float]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float64), name)


def _add_decision_tree(ensemble: _Ensemble, tree: Any, scale: float) -> None:
    t = tree.tree_
    missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8))
    ensemble.add_tree(
        t.children_left, t.children_right, t.feature, t.threshold, t.value[:, 0, 0],
        missing, scale,
    )  # fmt: skip


def _add_hist_tree(ensemble: _Ensemble, predictor: Any) -> None:
    nodes = predictor.nodes
    if nodes["is_categorical"].any():
        raise TypeError(
            "HistGradientBoostingRegressor with native categorical splits cannot be exported; "
            "one-hot encode the categories in the pipeline instead"
        )
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    ensemble.add_tree(
        left, nodes["right"].astype(np.int64), nodes["feature_idx"], nodes["num_threshold"],
        nodes["value"], nodes["missing_go_to_left"], 1.0,
    )  # fmt: skip


def convert_tree_regressor(scope: Any, operator: Any, container: Any) -> None:
    """A ``TreeEnsemble`` (ai.onnx.ml 5) in double, plus the model's constant, as above."""
    model = operator.raw_operator
    ensemble = _Ensemble()
    source = operator.inputs[0].full_name
    base = 0.0
    if isinstance(model, RandomForestRegressor | ExtraTreesRegressor):
        for tree in model.estimators_:
            _add_decision_tree(ensemble, tree, 1.0 / len(model.estimators_))
        source = round_through_float32(scope, container, source)
    elif isinstance(model, DecisionTreeRegressor):
        _add_decision_tree(ensemble, model, 1.0)
        source = round_through_float32(scope, container, source)
    elif isinstance(model, GradientBoostingRegressor):
        base = _gradient_boosting_base(model)
        for tree in model.estimators_[:, 0]:
            _add_decision_tree(ensemble, tree, float(model.learning_rate))
        source = round_through_float32(scope, container, source)
    elif isinstance(model, HistGradientBoostingRegressor):
        if model._loss.link.__class__.__name__ != "IdentityLink":
            raise TypeError(
                f"HistGradientBoostingRegressor(loss={model.loss!r}) has a non-identity link; "
                "only squared_error, absolute_error and quantile losses can be exported"
            )
        for (predictor,) in model._predictors:
            _add_hist_tree(ensemble, predictor)
        base = float(np.ravel(model._baseline_prediction)[0])
    else:  # pragma: no cover - registered for the classes above only
        raise TypeError(f"no tree converter for {type(model).__name__}")
    summed = scope.get_unique_variable_name("tree_sum")
    container.add_node(
        "TreeEnsemble", [source], [summed], op_domain=STAND_IN_DOMAIN, op_version=1,
        name=scope.get_unique_operator_name("TreeEnsemble"), **ensemble.attributes(),
    )  # fmt: skip
    constant = scope.get_unique_variable_name("tree_base")
    container.add_initializer(constant, TensorProto.DOUBLE, [1, 1], [base])
    container.add_node(
        "Add", [summed, constant], [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Add"),
    )  # fmt: skip


def _gradient_boosting_base(model: GradientBoostingRegressor) -> float:
    init = model.init_
    if init == "zero":
        return 0.0
    if isinstance(init, DummyRegressor):
        return float(np.ravel(init.constant_)[0])
    raise TypeError(
        f"GradientBoostingRegressor with init={type(init).__name__} cannot be exported; "
        "use the default init"
    )


def finish(model: onnx.ModelProto) -> None:
    """Move the stand-in nodes to ai.onnx.ml and import ai.onnx.ml at opset 5."""
    if not any(n.domain == STAND_IN_DOMAIN for n in model.graph.node):
        return
    for node in model.graph.node:
        if node.domain == STAND_IN_DOMAIN:
            node.domain = "ai.onnx.ml"
    imports = [o for o in model.opset_import if o.domain not in (STAND_IN_DOMAIN, "ai.onnx.ml")]
    del model.opset_import[:]
    model.opset_import.extend([*imports, onnx.helper.make_opsetid("ai.onnx.ml", 5)])


def tree_regressor_shapes(operator: Any) -> None:
    """One double value per row."""
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([rows, 1])


REGRESSORS = (
    RandomForestRegressor, ExtraTreesRegressor, DecisionTreeRegressor,
    GradientBoostingRegressor, HistGradientBoostingRegressor,
)  # fmt: skip
CONVERTERS = dict.fromkeys(REGRESSORS, convert_tree_regressor)
SHAPE_CALCULATORS = dict.fromkeys(REGRESSORS, tree_regressor_shapes)
