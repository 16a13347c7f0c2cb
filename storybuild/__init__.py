"""storybuild: make for films."""

__version__ = "0.1.0"
