"""storybuild-piper: Piper neural voices for storybuild, reached from a manifest as `voice: {engine: piper}`.

Registered only through the `storybuild.backends` entry point (see pyproject.toml); the
backend is storybuild_piper.backend:PiperBackend.
"""
