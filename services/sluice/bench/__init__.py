"""The benchmarks: every component against its baseline and its peers, measured in one run
(``sluice bench``; docs/benchmarks.md says how to read them). Each module runs alone too:
``python -m sluice.bench.<name> --help``."""
