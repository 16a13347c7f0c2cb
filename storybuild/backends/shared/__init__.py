"""What any backend may use: ffmpeg, audio, the speech timings format, worker liveness.

Not a backend: a toolkit every backend may share (built-ins and plug-ins alike),
so that no backend imports another.
"""
