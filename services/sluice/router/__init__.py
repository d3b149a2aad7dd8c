"""The router: the one entry point for inference. Blue/green, canary and shadow splits over
a routing table in Redis, feature lookup, shadow comparison and the prediction log."""
