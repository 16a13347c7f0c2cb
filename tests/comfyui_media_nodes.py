"""Video, audio and custom-node simulations for the ComfyUI test server.

Core video/audio nodes read and write real files (ffmpeg from imageio-ffmpeg, soundfile,
Pillow's animated WebP). The custom nodes the templates use (Wav2Lip, LatentSync,
SadTalker, F5-TTS, face restoration) do something visible and deterministic: mouths
follow the audio's loudness, speech is a tone per syllable-ish chunk of text.
"""

from __future__ import annotations

import os

import imageio_ffmpeg
import numpy as np
import soundfile

from comfyui_nodes import NodeFailure, node, text_hash, to_pil


def _frames_to_video_file(ctx, frames: np.ndarray, fps: float, prefix: str, ext: str, codec: str) -> dict:
    root = ctx.server.folder("output")
    subfolder, _, base = prefix.rpartition("/")
    folder = os.path.join(root, subfolder)
    os.makedirs(folder, exist_ok=True)
    count = len([f for f in os.listdir(folder) if f.startswith(base + "_")])
    name = f"{base}_{count + 1:05d}_.{ext}"
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(os.path.join(folder, name), (width, height), fps=fps, codec=codec,
                                         macro_block_size=1, output_params=["-loglevel", "error"])
    writer.send(None)
    for frame in frames:
        writer.send((np.clip(frame[..., :3], 0, 1) * 255).astype(np.uint8).tobytes())
    writer.close()
    return {"filename": name, "subfolder": subfolder, "type": "output"}


@node("SaveAnimatedWEBP")
def save_animated_webp(ctx, i):
    frames = [to_pil(f) for f in i["images"]]
    root = ctx.server.folder("output")
    subfolder, _, base = str(i["filename_prefix"]).rpartition("/")
    os.makedirs(os.path.join(root, subfolder), exist_ok=True)
    name = f"{base}_{len(os.listdir(os.path.join(root, subfolder))) + 1:05d}_.webp"
    frames[0].save(os.path.join(root, subfolder, name), "WEBP", save_all=True, append_images=frames[1:],
                   duration=int(round(1000 / float(i["fps"]))), lossless=bool(i.get("lossless", True)), loop=0)
    return (), {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}], "animated": [True]}


@node("SaveWEBM")
def save_webm(ctx, i):
    codec = "libvpx-vp9" if i.get("codec", "vp9") == "vp9" else "libaom-av1"
    entry = _frames_to_video_file(ctx, i["images"], float(i["fps"]), str(i["filename_prefix"]), "webm", codec)
    return (), {"images": [entry], "animated": [True]}


@node("LoadVideo")
def load_video(ctx, i):
    path = ctx.server.input_path(str(i["file"]))
    reader = imageio_ffmpeg.read_frames(path)
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(chunk, np.uint8).reshape(height, width, 3).astype(np.float32) / 255.0
              for chunk in reader]
    if not frames:
        raise NodeFailure(f"No frames could be read from {i['file']}")
    return ({"images": np.stack(frames), "fps": float(meta.get("fps") or 24.0), "audio": None},), None


@node("GetVideoComponents")
def get_video_components(ctx, i):
    video = i["video"]
    return (video["images"], video["audio"], video["fps"], 8, "sRGB"), None


@node("CreateVideo")
def create_video(ctx, i):
    return ({"images": i["images"], "fps": float(i["fps"]), "audio": i.get("audio")},), None


@node("LoadAudio")
def load_audio(ctx, i):
    data, rate = soundfile.read(ctx.server.input_path(str(i["audio"])), dtype="float32", always_2d=True)
    return ({"waveform": data.T[None].copy(), "sample_rate": int(rate)},), None


@node("SaveAudio")
def save_audio(ctx, i):
    audio = i["audio"]
    root = ctx.server.folder("output")
    subfolder, _, base = str(i["filename_prefix"]).rpartition("/")
    os.makedirs(os.path.join(root, subfolder), exist_ok=True)
    name = f"{base}_{len(os.listdir(os.path.join(root, subfolder))) + 1:05d}_.flac"
    soundfile.write(os.path.join(root, subfolder, name), audio["waveform"][0].T, audio["sample_rate"], format="FLAC")
    return (), {"audio": [{"filename": name, "subfolder": subfolder, "type": "output"}]}


def _loudness(audio: dict | None, frames: int, fps: float) -> np.ndarray:
    """Per-frame loudness 0..1 of an AUDIO value (drives simulated mouths)."""
    if audio is None:
        return np.zeros(frames, np.float32)
    wave = np.abs(audio["waveform"][0]).mean(axis=0)
    hop = max(1, int(audio["sample_rate"] / fps))
    levels = np.array([wave[k * hop:(k + 1) * hop].mean() if k * hop < len(wave) else 0.0 for k in range(frames)])
    return (levels / levels.max()).astype(np.float32) if levels.max() > 0 else levels.astype(np.float32)


def _mouths(images: np.ndarray, audio: dict | None, fps: float = 25.0) -> np.ndarray:
    out = images[..., :3].copy()
    height, width = out.shape[1:3]
    levels = _loudness(audio, len(out), fps)
    cx, cy = width // 2, int(height * 0.7)
    for index, level in enumerate(levels):
        half_w, half_h = max(1, width // 10), max(1, int(height * 0.06 * level) + 1)
        out[index, cy - half_h:cy + half_h, cx - half_w:cx + half_w] = (0.35, 0.05, 0.05)
    return out


@node("Wav2Lip")
def wav2lip(ctx, i):
    images = i["images"]
    for index in range(0, len(images), int(i.get("face_detect_batch", 8))):
        ctx.step(index, len(images))
    return (_mouths(images, i.get("audio")), i.get("audio")), None


@node("LatentSyncNode")
def latent_sync(ctx, i):
    steps = int(i.get("inference_steps", 20))
    for step in range(steps):
        ctx.step(step, steps)
    return (_mouths(i["images"], i.get("audio")), i.get("audio")), None


@node("SadTalker")
def sad_talker(ctx, i):
    image = i["image"][:1]
    audio = i["audio"]
    seconds = audio["waveform"].shape[-1] / audio["sample_rate"]
    frames = _mouths(np.repeat(image, max(1, int(seconds * 25)), axis=0), audio)
    entry = _frames_to_video_file(ctx, frames, 25.0, "sadtalker", "mp4", "libx264")
    path = os.path.join(ctx.server.folder("output"), entry["filename"])
    return (path, path), None


@node("ShowVideo")
def show_video(ctx, i):
    value = i["show_video_path"]
    return (), {"show_video_path": value if isinstance(value, list) else [value]}


@node("F5TTSAudioInputs")
def f5_tts(ctx, i):
    words = str(i["speech"]).split()
    if not words:
        raise NodeFailure("No text to speak")
    rate = 24000
    speed = float(i.get("speed", 1.0)) or 1.0
    chunks = []
    for index, word in enumerate(words):
        ctx.step(index, len(words))
        length = int(rate * (0.12 + 0.06 * len(word)) / speed)
        t = np.arange(length) / rate
        pitch = 140 + text_hash(word, i.get("seed", 0)) % 120
        envelope = np.sin(np.pi * np.arange(length) / length)
        chunks += [0.3 * np.sin(2 * np.pi * pitch * t) * envelope, np.zeros(int(rate * 0.08 / speed))]
    wave = np.concatenate(chunks).astype(np.float32)
    return ({"waveform": wave[None, None], "sample_rate": rate},), None


@node("FaceRestoreCFWithModel")
def face_restore(ctx, i):
    images = i["image"]
    return (np.clip(images * 1.02, 0, 1),), None

