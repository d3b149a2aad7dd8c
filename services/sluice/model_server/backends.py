"""The Runtime interface the service runs models through, and its onnxruntime implementation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

LABEL, PROBABILITIES, VALUE = "label", "probabilities", "value"
OUTPUTS = (LABEL, PROBABILITIES)
"""A classifier's outputs."""
REGRESSION_OUTPUTS = (VALUE,)
"""A regressor's output: one double per row, ``[N, 1]``."""

_ONNX_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(double)": np.dtype(np.float64),
    "tensor(float)": np.dtype(np.float32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(object),
}


class Runtime(Protocol):
    """A loaded model: feed ``[N, 1]`` arrays by input name, get its outputs by name: a
    classifier's ``label`` and ``probabilities``, a regressor's ``value``.

    ``run`` may be called from several threads at once.
    """

    @property
    def input_types(self) -> Mapping[str, np.dtype[Any]]:
        """The element type each input wants (float32/float64/int64/bool, object = strings)."""
        ...

    @property
    def output_types(self) -> Mapping[str, np.dtype[Any]]:
        """The element types of the outputs, in the order ``run`` answers them."""
        ...

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Output name -> array for one batch: labels ``[N]`` and probabilities
        ``[N, n_classes]``, or values ``[N, 1]``."""
        ...


class OnnxRuntime:
    """A Runtime over an onnxruntime CPU session of a registered ``model.onnx``."""

    def __init__(self, path: Path, *, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name: _element_type(i.name, i.type) for i in self.session.get_inputs()}
        outputs = {o.name: o.type for o in self.session.get_outputs()}
        wanted = REGRESSION_OUTPUTS if VALUE in outputs and LABEL not in outputs else OUTPUTS
        missing = [name for name in wanted if name not in outputs]
        if missing:
            raise ValueError(f"{path}: the ONNX graph has no output {', '.join(missing)}")
        self._outputs = {name: _element_type(name, outputs[name]) for name in wanted}
        self._names = list(wanted)

    @property
    def input_types(self) -> Mapping[str, np.dtype[Any]]:
        return self._inputs

    @property
    def output_types(self) -> Mapping[str, np.dtype[Any]]:
        return self._outputs

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self.session.run(self._names, feed), strict=True))


def _element_type(name: str, onnx_type: str) -> np.dtype[Any]:
    try:
        return _ONNX_TYPES[onnx_type]
    except KeyError:
        raise ValueError(f"ONNX value {name!r} has type {onnx_type}, not one we serve") from None
