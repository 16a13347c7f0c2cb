"""What the ComfyUI test server's nodes compute: real pictures for a film built end to end.

Image nodes really process pixels (numpy + Pillow); generative nodes (samplers, VAE
decoders) produce deterministic synthetic frames derived from the prompt text and seed,
so the same prompt gives the same picture and a different seed a different one. Any
class in object_info without an implementation here passes its inputs through by type,
so every template can run.

Values between nodes: IMAGE (B,H,W,C) float32 in 0..1, MASK (B,H,W), LATENT/CONDITIONING
dicts describing what would be generated, AUDIO {waveform (1,C,N), sample_rate}, VIDEO
{images, fps, audio}; loaders return a token naming their model file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageFilter

NodeFn = Callable[["RunContext", dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any] | None]]
NODES: dict[str, NodeFn] = {}


class NodeFailure(Exception):
    """A node raising at run time (becomes an execution_error)."""


class RunContext:
    """What a running node may use: folders, progress, interrupt checks, previews."""

    def __init__(self, server, prompt_id: str, node_id: str, class_type: str):
        self.server = server
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.class_type = class_type

    def step(self, value: int, total: int) -> None:
        """One unit of work: wait the simulated time, report progress, honour interrupts."""
        self.server.simulate_step(self, value, total)


def node(*names: str):
    def register(fn: NodeFn) -> NodeFn:
        for name in names:
            NODES[name] = fn
        return fn
    return register


def text_hash(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def to_pil(frame: np.ndarray) -> Image.Image:
    data = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(data, "RGBA" if data.shape[-1] == 4 else "RGB")


def from_pil(image: Image.Image) -> np.ndarray:
    image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") and "A" in image.getbands() else "RGB")
    return np.asarray(image, dtype=np.float32)[None] / 255.0


def synthesize(width: int, height: int, frames: int, text: str, seed: int) -> np.ndarray:
    """Deterministic frames for a prompt: a tinted gradient with a drifting disc."""
    rng = np.random.default_rng(text_hash(text, seed) % (2**32))
    base = rng.uniform(0.15, 0.85, 3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = (xx / max(1, width - 1))[..., None] * 0.35 + (yy / max(1, height - 1))[..., None] * 0.25
    out = np.empty((frames, height, width, 3), np.float32)
    cx0, cy0 = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = max(2.0, min(width, height) * 0.18)
    for index in range(frames):
        cx = cx0 + index * width * 0.01
        disc = ((xx - cx) ** 2 + (yy - cy0) ** 2) < radius ** 2
        frame = np.clip(base * 0.8 + gradient, 0, 1)
        frame[disc] = 1.0 - base
        out[index] = frame
    return out


# ------------------------------------------------------------------ images


@node("EmptyImage")
def empty_image(ctx, i):
    color = int(i["color"])
    rgb = np.array([(color >> 16) & 255, (color >> 8) & 255, color & 255], np.float32) / 255.0
    return (np.broadcast_to(rgb, (int(i["batch_size"]), int(i["height"]), int(i["width"]), 3)).copy(),), None


@node("LoadImage")
def load_image(ctx, i):
    path = ctx.server.input_path(str(i["image"]))
    with Image.open(path) as image:
        pixels = from_pil(image)
    mask = (1.0 - pixels[..., 3]) if pixels.shape[-1] == 4 else np.zeros(pixels.shape[:3], np.float32)
    return (pixels[..., :3].copy(), mask), None


@node("LoadImageMask")
def load_image_mask(ctx, i):
    with Image.open(ctx.server.input_path(str(i["image"]))) as image:
        channel = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[i.get("channel", "alpha")]
        bands = image.convert("RGBA").split()
        plane = np.asarray(bands["RGBA".index(channel)], np.float32) / 255.0
    return (plane[None],), None


@node("ImageScale")
def image_scale(ctx, i):
    width, height = int(i["width"]), int(i["height"])
    images = i["image"]
    width = width or max(1, round(images.shape[2] * height / images.shape[1]))
    height = height or max(1, round(images.shape[1] * width / images.shape[2]))
    return (np.stack([from_pil(to_pil(f).resize((width, height), Image.BILINEAR))[0] for f in images]),), None


@node("ImageScaleBy", "ImageUpscaleWithModel")
def image_scale_by(ctx, i):
    images = i.get("image")
    factor = float(i.get("scale_by", 2.0))
    size = (max(1, round(images.shape[2] * factor)), max(1, round(images.shape[1] * factor)))
    frames = []
    for index, frame in enumerate(images):
        ctx.step(index, len(images))
        frames.append(from_pil(to_pil(frame).resize(size, Image.BICUBIC))[0])
    return (np.stack(frames),), None


@node("ImageInvert")
def image_invert(ctx, i):
    return (1.0 - i["image"],), None


@node("ImageBlur")
def image_blur(ctx, i):
    radius = int(i["blur_radius"])
    return (np.stack([from_pil(to_pil(f).filter(ImageFilter.GaussianBlur(radius)))[0] for f in i["image"]]),), None


@node("ImageAddNoise")
def image_add_noise(ctx, i):
    rng = np.random.default_rng(int(i["seed"]) % (2**32))
    noise = rng.normal(0, float(i["strength"]) * 0.3, i["image"].shape).astype(np.float32)
    return (np.clip(i["image"] + noise, 0, 1),), None


@node("RepeatImageBatch")
def repeat_image_batch(ctx, i):
    return (np.concatenate([i["image"]] * int(i["amount"])),), None


@node("RemoveBackground")
def remove_background(ctx, i):
    images = i["image"]
    luminance = images[..., :3].mean(axis=-1)
    return ((luminance > np.median(luminance)).astype(np.float32),), None


@node("InvertMask")
def invert_mask(ctx, i):
    return (1.0 - i["mask"],), None


@node("JoinImageWithAlpha")
def join_alpha(ctx, i):
    images, alpha = i["image"], i["alpha"]
    alpha = np.broadcast_to(alpha, images.shape[:3])
    return (np.concatenate([images[..., :3], 1.0 - alpha[..., None]], axis=-1),), None


@node("FrameInterpolate", "RIFE VFI", "FILM VFI")
def frame_interpolate(ctx, i):
    frames = i.get("images") if i.get("images") is not None else i["frames"]
    multiplier = int(i.get("multiplier", 2))
    out = []
    for index in range(len(frames) - 1):
        ctx.step(index, len(frames) - 1)
        for k in range(multiplier):
            t = k / multiplier
            out.append(frames[index] * (1 - t) + frames[index + 1] * t)
    out.append(frames[-1])
    return (np.stack(out),), None


# ------------------------------------------------------------------ output nodes


def _save(ctx: RunContext, images: np.ndarray, prefix: str, folder_type: str) -> dict[str, Any]:
    height, width = images.shape[1:3]
    prefix = prefix.replace("%width%", str(width)).replace("%height%", str(height))
    prefix = re.sub(r"%year%", time.strftime("%Y"), prefix)
    root = ctx.server.folder(folder_type)
    subfolder, _, base = prefix.rpartition("/")
    full = os.path.realpath(os.path.join(root, subfolder))
    if os.path.commonpath([full, os.path.realpath(root)]) != os.path.realpath(root):
        raise NodeFailure("**** ERROR: Saving image outside the output folder is not allowed.\n"
                          f" full_output_folder: {full}\n         output_dir: {root}\n")
    os.makedirs(full, exist_ok=True)
    pattern = re.compile(re.escape(base) + r"_(\d{5})_")
    counter = max([int(m[1]) for f in os.listdir(full) if (m := pattern.match(f))], default=0) + 1
    files = []
    for index, frame in enumerate(images):
        name = f"{base.replace('%batch_num%', str(index))}_{counter + index:05d}_.png"
        buffer = io.BytesIO()
        to_pil(frame).save(buffer, "PNG")
        with open(os.path.join(full, name), "wb") as handle:
            handle.write(buffer.getvalue())
        files.append({"filename": name, "subfolder": subfolder, "type": folder_type})
    return {"images": files}


@node("SaveImage")
def save_image(ctx, i):
    return (i["images"],), _save(ctx, i["images"], str(i["filename_prefix"]), "output")


@node("PreviewImage")
def preview_image(ctx, i):
    suffix = "".join(chr(97 + (text_hash(ctx.prompt_id, ctx.node_id) >> (5 * k)) % 26) for k in range(5))
    return (), _save(ctx, i["images"], f"ComfyUI_temp_{suffix}", "temp")


@node("SaveImageWebsocket")
def save_image_websocket(ctx, i):
    images = i["images"]
    for index, frame in enumerate(images):
        ctx.step(index, len(images))
        buffer = io.BytesIO()
        to_pil(frame).save(buffer, "PNG")
        ctx.server.preview(ctx, buffer.getvalue())
    return (), None


@node("PreviewAny")
def preview_any(ctx, i):
    return (str(i["source"]),), {"text": [str(i["source"])]}


@node("PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveBoolean")
def primitive(ctx, i):
    return (i["value"],), None


# ------------------------------------------------------------------ generative stand-ins


@node("CLIPTextEncode")
def clip_text_encode(ctx, i):
    return ({"text": str(i["text"])},), None


def is_latent(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == "latent"


@node("KSampler", "KSamplerAdvanced", "SamplerCustom")
def ksampler(ctx, i):
    steps = int(i.get("steps", 20))
    for step in range(steps):
        ctx.step(step, steps)
    latent = dict(next((v for v in i.values() if is_latent(v)), None)
                  or {"kind": "latent", "width": 512, "height": 512, "frames": 1})
    pixels = latent.pop("pixels", None)
    if pixels is not None and float(i.get("denoise", 1.0)) < 1.0:
        latent["start"] = pixels[0]  # img2img keeps the picture; full denoise repaints it
    positive = i.get("positive") or {}
    latent.update(text=positive.get("text", latent.get("text", "")), seed=int(i.get("seed", i.get("noise_seed", 0))))
    return (latent,), None


@node("VAEDecode", "VAEDecodeTiled")
def vae_decode(ctx, i):
    latent = i["samples"]
    if "pixels" in latent:
        return (latent["pixels"],), None
    frames = int(latent.get("frames", 1)) * int(latent.get("batch", 1))
    if "start" in latent:
        return (animate(latent["start"], int(latent["width"]), int(latent["height"]), frames,
                        int(latent.get("seed", 0))),), None
    return (synthesize(int(latent["width"]), int(latent["height"]), frames, latent.get("text", ""),
                       int(latent.get("seed", 0))),), None


@node("VAEEncode")
def vae_encode(ctx, i):
    pixels = i["pixels"]
    return ({"kind": "latent", "width": pixels.shape[2], "height": pixels.shape[1], "frames": len(pixels),
             "pixels": pixels},), None


def latent_from(i: dict[str, Any]) -> dict[str, Any]:
    """A LATENT for nodes with width/height/length inputs (empty latents, *ToVideo)."""
    start = i.get("start_image") if i.get("start_image") is not None else i.get("image")
    width = int(i.get("width", start.shape[2] if start is not None else 512))
    height = int(i.get("height", start.shape[1] if start is not None else 512))
    latent = {"kind": "latent", "width": width, "height": height, "frames": int(i.get("length", 1)),
              "batch": int(i.get("batch_size", 1))}
    if start is not None:
        latent["start"] = start[0]
    return latent


def animate(start: np.ndarray, width: int, height: int, frames: int, seed: int) -> np.ndarray:
    """Image-to-video stand-in: the start frame, resized, drifting sideways frame by frame."""
    base = from_pil(to_pil(start[..., :3]).resize((width, height), Image.BILINEAR))[0]
    step = 1 + seed % 3
    return np.stack([np.roll(base, index * step, axis=1) for index in range(frames)])


# ------------------------------------------------------------------ anything else

MODEL_TYPES = {"MODEL", "CLIP", "VAE", "CONTROL_NET", "CLIP_VISION", "CLIP_VISION_OUTPUT", "UPSCALE_MODEL",
               "INTERP_MODEL", "LATENT_UPSCALE_MODEL", "BACKGROUND_REMOVAL", "IPADAPTER", "FACERESTORE_MODEL"}


def _kind_of(value: Any) -> str | None:
    if isinstance(value, np.ndarray):
        return {4: "IMAGE", 3: "MASK"}.get(value.ndim)
    if is_latent(value):
        return "LATENT"
    if isinstance(value, dict):
        if "waveform" in value:
            return "AUDIO"
        if "images" in value and "fps" in value:
            return "VIDEO"
        if "text" in value:
            return "CONDITIONING"
        return value.get("kind")
    return None


def generic(spec, inputs: dict[str, Any]) -> tuple[Any, ...]:
    """Outputs by type for a class without its own simulation: pass through or describe."""
    outputs = []
    for slot, out_type in enumerate(spec.outputs):
        name = spec.output_names[slot] if slot < len(spec.output_names) else ""
        same_name = inputs.get(name)
        if same_name is not None and _kind_of(same_name) == out_type:
            outputs.append(same_name)
            continue
        match = next((v for v in inputs.values() if _kind_of(v) == out_type), None)
        if match is not None and out_type == "LATENT" and "width" in inputs and "height" in inputs:
            outputs.append({**match, "width": int(inputs["width"]), "height": int(inputs["height"])})  # resized
        elif match is not None:
            outputs.append(match)
        elif out_type == "LATENT":
            outputs.append(latent_from(inputs))
        elif out_type == "CONDITIONING":
            outputs.append({"text": ""})
        elif out_type == "IMAGE":
            outputs.append(synthesize(64, 64, 1, spec.name, 0))
        elif out_type == "MASK":
            outputs.append(np.zeros((1, 64, 64), np.float32))
        else:
            label = next((v for v in inputs.values() if isinstance(v, str)), spec.name)
            outputs.append({"kind": out_type, "name": label})
    return tuple(outputs)
