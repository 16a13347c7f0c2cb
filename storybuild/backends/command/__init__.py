"""The command backend: custom steps, any program with declared inputs and outputs (argv, no shell)."""

NAME = "command"
VERSION = "1"  # bump when the same step would give different outputs
BACKEND = "storybuild.backends.command.backend:CommandBackend"
CAPABILITIES = frozenset({"command"})
