"""Defaults shared by every entry point (kept import-free so that the CLI can read them without loading torch)."""

#: The one default seed of `oe-text train`, `oe-text evaluate`, the recipes, notebooks and benchmarks (transformers'
#: `TrainingArguments` default). `oe-text evaluate` on a saved detector uses the seed recorded in its config instead.
DEFAULT_SEED = 42
