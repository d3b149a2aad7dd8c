"""The drift monitor: reads the router's prediction log, measures drift per feature and per
version against the training profile, compares candidate and stable on the same traffic,
joins ground truth, exports every figure, and calls a webhook when drift persists."""
