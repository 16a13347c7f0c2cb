"""The command line: one module per command group; the only layer that prints or exits."""
