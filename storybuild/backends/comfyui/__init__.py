"""The ComfyUI backend: real HTTP + WebSocket protocol, validated workflows, server farms."""
