"""Source adapters: one module per input format, each registered under the name used in config."""
