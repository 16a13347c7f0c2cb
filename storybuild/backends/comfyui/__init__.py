"""The ComfyUI backend: real HTTP + WebSocket protocol, validated workflows, server farms.

    settings   backends.comfyui read (config.schema.json is its schema)
    expansion  capability / workflow id → action params (at plan time); shotplan: a
               generative shot's actions (plan_picture); prompt: params → bound prompt
    workflow   load API/UI workflows, apply bindings, LoRA chains, optional parts
    convert    UI (litegraph) format → API format with object_info
    validate   check a prompt against object_info as ComfyUI does; messages: readable errors
    client     one server over HTTP; websocket: its events; jobrunner: one job on one server
    farm       many servers fed by pull, circuit breakers (breaker), job records (jobrecords)
    registry   the shipped templates (templates/ beside this file) and routing by capability
    backend    the Backend: keyframe, clip, lipsync, speech (mediafiles, speechfiles: outputs)
    commands   models, live workflow checks for the CLI

Nothing here imports requests or websocket-client until a server is actually used.
"""

NAME = "comfyui"
VERSION = "1"
BACKEND = "storybuild.backends.comfyui.backend:ComfyUIBackend"
CAPABILITIES = frozenset({"text_to_image", "image_to_image", "image_to_video", "text_to_video", "inpaint",
                          "video_alpha", "upscale", "interpolate", "lipsync", "tts"})
VOICE_SCHEMA = {"required": ["workflow"]}  # a voice on ComfyUI is a text-to-speech workflow


def __getattr__(name: str):
    # Read only when asked: the settings schema (when a schema is published) and the ids of
    # the shipped workflow templates (when a manifest names builtin:<id>).
    import json
    from importlib import resources

    if name == "CONFIG_SCHEMA":
        return json.loads(resources.files(__name__).joinpath("config.schema.json").read_text("utf-8"))
    if name == "SHIPPED_WORKFLOWS":
        try:
            index = resources.files(__name__).joinpath("templates", "index.json").read_text("utf-8")
            return frozenset(json.loads(index).get("templates", {}))
        except (OSError, ValueError, AttributeError):
            return frozenset()
    raise AttributeError(name)
