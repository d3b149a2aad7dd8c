"""The model server: one registered ONNX model version over the Open Inference Protocol (V2)."""
