"""The espeak backend: speech from text with espeak-ng (the espeakng-loader wheel), with word and phoneme timings."""

NAME = "espeak"
VERSION = "2"  # 2: breathy voices reseeded, no longer vary with the clock
BACKEND = "storybuild.backends.espeak.backend:EspeakBackend"
CAPABILITIES = frozenset({"tts"})
DEPENDENCIES = ("espeakng-loader",)  # its espeak-ng build: another release may speak a line otherwise
