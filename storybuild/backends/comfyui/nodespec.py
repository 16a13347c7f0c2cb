"""What `/object_info` says about a node class's inputs, read once into small typed records.

ComfyUI describes each input as `[TYPE, {options}]`, with two encodings for combos (a
legacy `[[choices...], {opts}]` and the V3 `["COMBO", {"options": [...]}]`) and V3
structural types for dynamic combos, autogrow inputs and match-type links. The converter
and the validator both need the same reading of that, so it lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

PRIMITIVES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
MATCHTYPE = "COMFY_MATCHTYPE_V3"
# Frontend-only node types that never reach the server (they are dropped from API prompts).
VIRTUAL_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})

# Model-file combos: which models folder a loader input lists. Used to check a server's
# models (`/models/<folder>`) and to tell a missing model apart from a mistyped option.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("FrameInterpolationModelLoader", "model_name"): "frame_interpolation",
    ("LoadBackgroundRemovalModel", "bg_removal_name"): "background_removal",
    ("FaceRestoreModelLoader", "model_name"): "facerestore_models",
    ("IPAdapterModelLoader", "ipadapter_file"): "ipadapter",
}


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class."""

    name: str
    section: str  # required | optional
    type: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, a link type ("IMAGE", "FLOAT,INT", "*"), or a V3 type
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[Any, ...] | None = None  # for combos (both encodings)
    raw: Any = field(default=None, compare=False, repr=False)  # the object_info entry, echoed in errors

    @property
    def config(self) -> list[Any]:
        """`[type, options]` as ComfyUI echoes it in errors (`input_config`)."""
        head = self.raw[0] if isinstance(self.raw, (list, tuple)) and self.raw else self.type
        return [head, dict(self.options)]

    @property
    def required(self) -> bool:
        return self.section == "required"

    @property
    def is_combo(self) -> bool:
        return self.choices is not None and self.type in ("COMBO", DYNAMIC_COMBO)

    @property
    def is_widget(self) -> bool:
        """Whether the UI shows this input as a widget (a value in `widgets_values`)."""
        if self.options.get("forceInput"):
            return False
        if self.type in PRIMITIVES or self.type in ("COMBO", DYNAMIC_COMBO, "COLOR"):
            return True
        return "widgetType" in self.options

    @property
    def extra_widget_values(self) -> int:
        """UI-only values stored after this widget's own (seed mode, upload button)."""
        extra = 1 if self.options.get("control_after_generate") else 0
        if any(key.endswith("_upload") and value for key, value in self.options.items()):
            extra += 1
        return extra

    def accepts_link_type(self, received: str) -> bool:
        """Whether an output of type `received` may feed this input (ComfyUI's rule).

        Comma lists match when they share a type; `*` matches anything; match-type
        inputs and outputs take whatever is linked.
        """
        if self.type == MATCHTYPE or received == MATCHTYPE:
            return True
        if self.is_combo:
            return received in ("COMBO", "*")
        if received == self.type:
            return True
        received_types = {t.strip() for t in received.split(",")}
        wanted = {t.strip() for t in self.type.split(",")}
        return "*" in received_types or "*" in wanted or bool(received_types & wanted)

    def dynamic_options(self) -> dict[str, list["InputSpec"]]:
        """For a dynamic combo: option key → the sub-inputs that option adds (dotted names)."""
        result: dict[str, list[InputSpec]] = {}
        for option in self.options.get("options", []):
            if not isinstance(option, Mapping):
                continue
            subs = []
            for section in ("required", "optional"):
                for sub_name, raw in option.get("inputs", {}).get(section, {}).items():
                    subs.append(parse_input(f"{self.name}.{sub_name}", section, raw))
            result[str(option.get("key"))] = subs
        return result

    def autogrow_names(self) -> tuple[list[str], int]:
        """For an autogrow input: the allowed sub-names and the minimum count."""
        template = self.options.get("template", {})
        return list(template.get("names", [])), int(template.get("min", 0) or 0)


def parse_input(name: str, section: str, raw: Any) -> InputSpec:
    """Read one `[TYPE, {options}]` entry from object_info."""
    if not isinstance(raw, (list, tuple)) or not raw:
        return InputSpec(name, section, "*", raw=raw)
    head = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    if isinstance(head, list):  # legacy combo: the list of choices itself
        return InputSpec(name, section, "COMBO", options, tuple(head), raw)
    head = str(head)
    if head == "COMBO":
        return InputSpec(name, section, "COMBO", options, tuple(options.get("options", [])), raw)
    if head == DYNAMIC_COMBO:
        keys = tuple(str(o.get("key")) for o in options.get("options", []) if isinstance(o, Mapping))
        return InputSpec(name, section, DYNAMIC_COMBO, options, keys, raw)
    return InputSpec(name, section, head, options, raw=raw)


@dataclass(frozen=True)
class NodeClass:
    """A node class from object_info: its inputs in UI order and its outputs."""

    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    output_node: bool
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def widgets(self) -> Iterator[InputSpec]:
        return (spec for spec in self.inputs if spec.is_widget)


def node_class(object_info: Mapping[str, Any], class_type: str) -> NodeClass | None:
    """The parsed class, or None when the server does not know it."""
    raw = object_info.get(class_type)
    if not isinstance(raw, Mapping) or not raw:
        return None
    declared = raw.get("input", {}) or {}
    order = raw.get("input_order", {}) or {}
    specs: list[InputSpec] = []
    for section in ("required", "optional"):
        entries = declared.get(section, {}) or {}
        # input_order is the UI's widget order; fall back to the dict order for old dumps.
        names = list(order.get(section, [])) or list(entries)
        for name in names:
            if name in entries:
                specs.append(parse_input(name, section, entries[name]))
    return NodeClass(
        class_type,
        tuple(specs),
        tuple(str(t) if not isinstance(t, list) else "COMBO" for t in raw.get("output", [])),
        tuple(raw.get("output_name", [])),
        bool(raw.get("output_node")),
        raw,
    )


def model_folder(class_type: str, input_name: str) -> str | None:
    """The models folder a loader's input lists, if it is a model-file combo."""
    return MODEL_INPUTS.get((class_type, input_name))


def is_link(value: Any) -> bool:
    """Whether an API-format input value is a link `[node_id, slot]` (ComfyUI reads any list so)."""
    return isinstance(value, list)
