"""Read 3D model files into coloured triangle parts: glTF/GLB, OBJ, PLY, STL, OFF, USD, FBX.

Model inputs arrive from the content-addressed cache, often without a file extension, so
the format is sniffed from the first bytes when the name does not tell. trimesh reads the
common formats with numpy alone; USD needs the `usd-core` package (pxr) and FBX an assimp
binding (`pyassimp` or `impasse`); when one is missing the error says what to install.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storybuild.errors import BackendError

DEFAULT_COLOR = (0.72, 0.72, 0.72)
TRIMESH_FORMATS = {"glb", "gltf", "obj", "ply", "stl", "off"}
USD_FORMATS = {"usd", "usda", "usdc", "usdz"}
SUFFIXES = TRIMESH_FORMATS | USD_FORMATS | {"fbx"}


@dataclass(frozen=True)
class Part:
    """One coloured triangle mesh of a model, in the model's own frame (metres, Y up)."""

    vertices: np.ndarray  # (V,3) float64
    faces: np.ndarray  # (F,3) int64
    colors: np.ndarray  # (F,3,3) float32 sRGB 0..1 per corner
    name: str = ""  # node name in the file ("head" parts anchor a character's mouth)
    emissive: bool = False  # glows: drawn at full colour whatever the light


def sniff_format(path: Path) -> str:
    """The model format of a file, from its extension or else from its first bytes."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in SUFFIXES:
        return suffix
    with open(path, "rb") as f:
        head = f.read(512)
    text = head.lstrip()
    if head[:4] == b"glTF":
        return "glb"
    if head.startswith(b"Kaydara FBX Binary") or text.startswith(b"; FBX"):
        return "fbx"
    if head.startswith(b"PXR-USDC"):
        return "usdc"
    if text.startswith(b"#usda"):
        return "usda"
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(n.endswith((".usdc", ".usda")) for n in z.namelist()):
                return "usdz"
    if text.startswith(b"ply"):
        return "ply"
    if text.startswith((b"OFF", b"COFF", b"NOFF")):
        return "off"
    if text.startswith(b"{") and b'"asset"' in head + _peek_more(path):
        return "gltf"
    size = path.stat().st_size
    if len(head) >= 84 and 84 + 50 * int.from_bytes(head[80:84], "little") == size:
        return "stl"  # binary STL: 80-byte header, a count, 50 bytes per triangle
    if text.startswith(b"solid"):
        return "stl"
    if any(line.split()[:1] in ([b"v"], [b"f"], [b"o"], [b"g"], [b"mtllib"]) for line in text.splitlines()):
        return "obj"
    raise BackendError(f"cannot tell what kind of 3D model {path.name} is",
                       hint="models may be .glb, .gltf, .obj, .ply, .stl, .off, .usd/.usda/.usdc/.usdz or .fbx")


def _peek_more(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(65536)


def read_parts(path: Path) -> list[Part]:
    """Every triangle mesh in a model file, with node transforms applied and colours resolved."""
    fmt = sniff_format(path)
    if fmt in TRIMESH_FORMATS:
        parts = _read_trimesh(path, fmt)
    elif fmt in USD_FORMATS:
        parts = _read_usd(path)
    else:
        parts = _read_fbx(path)
    parts = [p for p in parts if len(p.faces)]
    if not parts:
        raise BackendError(f"3D model {path.name} holds no triangles")
    return parts


# --------------------------------------------------------------------------- trimesh


def _read_trimesh(path: Path, fmt: str) -> list[Part]:
    import trimesh

    try:
        with open(path, "rb") as f:
            scene = trimesh.load(f, file_type=fmt, force="scene",
                                 resolver=trimesh.resolvers.FilePathResolver(str(path)))
    except BackendError:
        raise
    except Exception as exc:  # trimesh raises many types for a malformed file
        hint = "a .gltf must embed its buffers; export .glb instead" if fmt == "gltf" else None
        raise BackendError(f"cannot read 3D model {path.name} ({fmt}): {exc}", hint=hint) from exc
    parts = []
    for node in sorted(scene.graph.nodes_geometry):
        transform, geometry_name = scene.graph[node]
        mesh = scene.geometry.get(geometry_name)
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue  # point clouds and paths have no surface to draw
        vertices = np.asarray(mesh.vertices, dtype=np.float64) @ transform[:3, :3].T + transform[:3, 3]
        faces = np.asarray(mesh.faces, dtype=np.int64)
        name = f"{node} {geometry_name}"
        parts.append(Part(vertices, faces, _trimesh_colors(mesh), name, _emissive(mesh)))
    return parts


def _emissive(mesh) -> bool:
    """Whether a mesh's material glows (a lamp): a non-black glTF emissive factor."""
    material = getattr(mesh.visual, "material", None)
    factor = getattr(material, "emissiveFactor", None)
    if factor is None:
        return False
    f = np.asarray(factor, dtype=np.float64)
    return bool(f.size and f.max() > (12.0 if f.max() > 1.0 else 0.05))


def _trimesh_colors(mesh) -> np.ndarray:
    """Per-corner sRGB colours of a trimesh mesh from its vertex/face colours or material."""
    faces = np.asarray(mesh.faces)
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        vc = np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
        return vc[faces]
    if kind == "face":
        fc = np.asarray(visual.face_colors)[:, :3].astype(np.float32) / 255.0
        return np.repeat(fc[:, None, :], 3, axis=1)
    if kind == "texture":
        material = visual.material
        base = _material_color(material)
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            tint = _material_factor(material)
            vc = _sample_texture(image, np.asarray(uv)) * tint
            return vc[faces].astype(np.float32)
        return np.broadcast_to(np.array(base, np.float32), (len(faces), 3, 3)).copy()
    return np.broadcast_to(np.array(DEFAULT_COLOR, np.float32), (len(faces), 3, 3)).copy()


def _material_factor(material) -> np.ndarray:
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        return np.ones(3, np.float32)
    f = np.asarray(factor, dtype=np.float32)[:3]
    return f / 255.0 if f.max() > 1.0 else f


def _material_color(material) -> tuple[float, float, float]:
    for attr in ("baseColorFactor", "diffuse", "main_color"):
        value = getattr(material, attr, None)
        if value is not None:
            c = np.asarray(value, dtype=np.float32)[:3]
            return tuple((c / 255.0 if c.max() > 1.0 else c).tolist())  # type: ignore[return-value]
    return DEFAULT_COLOR


def _sample_texture(image, uv: np.ndarray) -> np.ndarray:
    """Colours of an image at per-vertex UVs (nearest texel, wrapped; glTF's v points down)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    h, w = rgb.shape[:2]
    u = np.mod(uv[:, 0], 1.0)
    v = np.mod(1.0 - uv[:, 1], 1.0)
    x = np.clip((u * w).astype(np.int64), 0, w - 1)
    y = np.clip((v * h).astype(np.int64), 0, h - 1)
    return rgb[y, x]


# --------------------------------------------------------------------------- USD


def _read_usd(path: Path) -> list[Part]:
    try:
        from pxr import Usd, UsdGeom
    except ImportError as exc:
        raise BackendError(f"reading USD model {path.name} needs the usd-core package",
                           hint="pip install usd-core") from exc
    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise BackendError(f"cannot open USD model {path.name}")
    scale = UsdGeom.GetStageMetersPerUnit(stage) or 1.0
    z_up = UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    parts = []
    for prim in stage.Traverse():
        if not prim.IsA(UsdGeom.Mesh):
            continue
        mesh = UsdGeom.Mesh(prim)
        points = np.asarray(mesh.GetPointsAttr().Get() or [], dtype=np.float64).reshape(-1, 3)
        counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], dtype=np.int64)
        indices = np.asarray(mesh.GetFaceVertexIndicesAttr().Get() or [], dtype=np.int64)
        if len(points) == 0 or len(counts) == 0:
            continue
        # USD matrices are row-major with row vectors: p' = p · M.
        m = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()),
                       dtype=np.float64).reshape(4, 4)
        world = points @ m[:3, :3] + m[3, :3]
        if z_up:
            world = world[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])
        faces, face_of = _fan_triangulate(counts, indices)
        colors = _usd_colors(mesh, len(points), counts, faces, face_of)
        parts.append(Part(world * scale, faces, colors, str(prim.GetPath())))
    return parts


def _fan_triangulate(counts: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (vertex counts + flat indices) → triangles as fans, and each triangle's polygon."""
    starts = np.cumsum(counts) - counts
    n_tris = np.maximum(counts - 2, 0)
    face_of = np.repeat(np.arange(len(counts)), n_tris)
    k = np.arange(face_of.size) - np.repeat(np.cumsum(n_tris) - n_tris, n_tris)
    s = starts[face_of]
    tris = np.stack([indices[s], indices[s + k + 1], indices[s + k + 2]], axis=1)
    return tris, face_of


def _usd_colors(mesh, n_points: int, counts, faces, face_of) -> np.ndarray:
    """displayColor by its interpolation (constant, uniform, vertex/varying), else a grey."""
    primvar = mesh.GetDisplayColorPrimvar()
    values = primvar.Get() if primvar and primvar.HasValue() else None
    if not values:
        return np.broadcast_to(np.array(DEFAULT_COLOR, np.float32), (len(faces), 3, 3)).copy()
    col = np.asarray(values, dtype=np.float32).reshape(-1, 3)
    interp = primvar.GetInterpolation()
    if interp in ("vertex", "varying") and len(col) == n_points:
        return col[faces]
    if interp == "uniform" and len(col) == len(counts):
        return np.repeat(col[face_of][:, None, :], 3, axis=1)
    return np.broadcast_to(col[0], (len(faces), 3, 3)).copy()


# --------------------------------------------------------------------------- FBX


def _read_fbx(path: Path) -> list[Part]:
    try:
        import pyassimp as assimp  # type: ignore[import-not-found]
        from pyassimp import postprocess  # type: ignore[import-not-found]
    except ImportError:
        try:
            import impasse as assimp  # type: ignore[import-not-found]
            from impasse.constants import ProcessingStep as postprocess  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BackendError(f"reading FBX model {path.name} needs an assimp binding",
                               hint="pip install pyassimp (plus the assimp library), or pip install impasse") from exc
    flags = postprocess.aiProcess_Triangulate | postprocess.aiProcess_PreTransformVertices
    # pyassimp's AssimpError derives from BaseException, not Exception.
    binding_error = getattr(getattr(assimp, "errors", None), "AssimpError", Exception)
    try:
        loaded = assimp.load(str(path), processing=flags)
        # pyassimp returns a context manager that loads on entry; impasse returns the scene.
        scene = loaded.__enter__() if hasattr(loaded, "__enter__") else loaded
    except (Exception, binding_error) as exc:  # the bindings raise their own error types
        raise BackendError(f"cannot read FBX model {path.name}: {exc}",
                           hint="export it again from your 3D tool, or as glTF (.glb)") from exc
    try:
        parts = []
        for mesh in scene.meshes:
            vertices = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
            faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
            color = _assimp_color(scene.materials[mesh.materialindex]) if scene.materials else DEFAULT_COLOR
            parts.append(Part(vertices * _fbx_scale(scene), faces,
                              np.broadcast_to(np.array(color, np.float32), (len(faces), 3, 3)).copy(),
                              str(getattr(mesh, "name", "") or "")))
        return parts
    finally:
        if hasattr(loaded, "__exit__"):
            loaded.__exit__(None, None, None)


def _assimp_color(material) -> tuple[float, float, float]:
    props = getattr(material, "properties", {}) or {}
    # pyassimp keys properties by (name, semantic) with the "$clr." prefix stripped.
    for key in (("diffuse", 0), "diffuse", ("$clr.diffuse", 0), "$clr.diffuse", ("base_color", 0), "base_color"):
        value = props.get(key) if hasattr(props, "get") else None
        if value is not None and len(value) >= 3:
            return tuple(float(c) for c in value[:3])  # type: ignore[return-value]
    return DEFAULT_COLOR


def _fbx_scale(scene) -> float:
    """Metres per file unit: FBX states its unit as a multiple of a centimetre."""
    factor = _scene_metadata(scene).get("UnitScaleFactor")
    try:
        return float(factor) * 0.01 if factor is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


_AI_METADATA_NUMBERS = {1: "c_int32", 2: "c_uint64", 3: "c_float", 4: "c_double", 8: "c_int64", 9: "c_uint32"}


def _scene_metadata(scene) -> dict:
    """A loaded scene's numeric metadata: impasse gives a mapping, pyassimp a ctypes aiMetadata*."""
    meta = getattr(scene, "metadata", None)
    if meta is None or hasattr(meta, "get"):
        return meta or {}
    import ctypes

    try:
        table = meta.contents
    except (ValueError, AttributeError):  # a NULL pointer: no metadata
        return {}
    out = {}
    for i in range(table.mNumProperties):
        key, entry = table.mKeys[i], table.mValues[i]
        kind = _AI_METADATA_NUMBERS.get(entry.mType)
        if kind is not None and entry.mData:
            name = bytes(key.data[:key.length]).decode("utf-8", "replace")
            out[name] = ctypes.cast(entry.mData, ctypes.POINTER(getattr(ctypes, kind))).contents.value
    return out
