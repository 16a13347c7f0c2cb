"""Embedded backends: everything needed to build an animatic film with pip packages only."""

NAME = "embedded"
# 5: faster shading and loudness (last-bit changes); 4: AAC with the fast coder;
# 3: fixed keyframes; 2: x264 with two threads
VERSION = "5"
BACKEND = "storybuild.backends.embedded.backend:EmbeddedBackend"
CAPABILITIES = frozenset({"visemes", "render3d", "image", "mix", "assemble", "export"})
