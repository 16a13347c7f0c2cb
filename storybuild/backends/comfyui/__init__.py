"""The ComfyUI backend: real HTTP + WebSocket protocol, validated workflows, server farms.

    planning   capability / workflow id → action params (at plan time)
    workflow   load API/UI workflows, apply bindings, LoRA chains, optional parts
    convert    UI (litegraph) format → API format with object_info
    validate   check a prompt against object_info as ComfyUI does; messages: readable errors
    client     one server over HTTP; events: its WebSocket; runner: one job on one server
    farm       many servers fed by pull, circuit breakers (breaker), job records (records)
    registry   the shipped templates (templates/comfyui) and routing by capability
    backend    the Backend: keyframe, clip, lipsync, speech (media, speech: output files)
    commands   list_models, validate_workflows, stats for the CLI

Nothing here imports requests or websocket-client until a server is actually used.
"""
