"""The trainer: a table in, an immutable registered model version out.

``service.train_and_register`` fits a scikit-learn pipeline, scores it on held-out rows,
exports it to ONNX, refuses it unless ONNX reproduces scikit-learn, profiles the training
data for drift and registers model, card and profile. ``data.generate_churn`` makes the
demo table. ``python -m sluice.trainer`` (Dockerfile.train) and ``sluice train`` run it.
"""
