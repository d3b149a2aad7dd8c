"""Find the step of a user's pipeline that cannot become ONNX, before trying to convert it.

skl2onnx's own error for an unknown class is a traceback about a missing shape
calculator; a user needs to know which step of their pipeline it is and what to do.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer


def unsupported_step(estimator: Any, where: str = "") -> str | None:
    """``'prep' > 'log' (FunctionTransformer(func=log1p))``-style path of the first step
    skl2onnx cannot convert, or None when every step has a converter."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    from sluice.trainer.export import CONVERTERS

    if isinstance(estimator, Pipeline):
        children = [(name, step) for name, step in estimator.steps]
    elif isinstance(estimator, ColumnTransformer):
        transformers = getattr(estimator, "transformers_", estimator.transformers)
        children = [(name, step) for name, step, _ in transformers]
    elif isinstance(estimator, FeatureUnion):
        children = list(estimator.transformer_list)
    else:
        if isinstance(estimator, FunctionTransformer) and estimator.func is not None:
            func = getattr(estimator.func, "__name__", repr(estimator.func))
            return f"{where or 'the model'} (FunctionTransformer(func={func}))"
        cls = type(estimator)
        if cls in sklearn_operator_name_map or cls in CONVERTERS:
            return None
        return f"{where or 'the model'} ({cls.__module__}.{cls.__name__})"
    for name, step in children:
        if isinstance(step, str):  # "drop" / "passthrough"
            continue
        found = unsupported_step(step, f"{where} > {name!r}" if where else repr(name))
        if found is not None:
            return found
    return None
