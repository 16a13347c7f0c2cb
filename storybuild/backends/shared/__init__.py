"""What any backend may use: ffmpeg, audio, the speech timings format, worker liveness.

Not a backend: a toolkit the backends share (the embedded one, ComfyUI, espeak, plug-ins),
so that no backend imports another.
"""
