"""Model loading (every trimesh format, sniffed without extensions), placement, puppets, anchors."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pytest
import trimesh
from trimesh.visual.material import PBRMaterial

from storybuild.backends.embedded import scene3d
from storybuild.backends.embedded.meshcache import load_model
from storybuild.backends.embedded.model_io import sniff_format
from storybuild.backends.embedded.puppet import model_anchor, puppet_mesh
from storybuild.backends.embedded.render3d import EMISSIVE
from storybuild.backends.embedded.scene3d import crease_normals, place, placement_matrix
from storybuild.errors import BackendError


def red_box() -> trimesh.Trimesh:
    # Vertex colours, not face colours: exporting per-face colours needs scipy, which
    # storybuild does not depend on (a user's model with them loads fine either way).
    box = trimesh.creation.box((1.0, 2.0, 0.5))
    box.visual.vertex_colors = np.tile([204, 25, 25, 255], (len(box.vertices), 1)).astype(np.uint8)
    return box


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply", "stl", "off"])
def test_each_format_loads_with_its_shape(tmp_path, fmt):
    data = red_box().export(file_type=fmt)
    path = tmp_path / f"box.{fmt}"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    mesh = load_model(path)
    assert mesh.count == 12
    assert mesh.bounds == pytest.approx(np.array([[-0.5, -1.0, -0.25], [0.5, 1.0, 0.25]]), abs=1e-5)
    assert np.isfinite(mesh.normals).all()
    if fmt in ("glb", "ply"):  # formats trimesh writes colours into
        assert mesh.colors[0, 0] == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    # The cache hands back the same mesh for an unchanged file.
    assert load_model(path) is mesh
    # Cached inputs have no extension: the format is sniffed from the bytes.
    bare = tmp_path / f"0123abcd{fmt}"
    shutil.copy(path, bare)
    assert sniff_format(bare) == fmt
    assert load_model(bare).count == 12


def test_gltf_with_embedded_buffers(tmp_path):
    files = trimesh.Scene(red_box()).export(file_type="gltf", embed_buffers=True)
    (tmp_path / "scene").write_bytes(files["model.gltf"])
    assert sniff_format(tmp_path / "scene") == "gltf"
    assert load_model(tmp_path / "scene").count == 12


def test_glb_scene_keeps_transforms_materials_glow_and_head(tmp_path):
    scene = trimesh.Scene()
    body = trimesh.creation.box((0.4, 1.0, 0.3))
    body.visual = trimesh.visual.TextureVisuals(material=PBRMaterial(baseColorFactor=[40, 80, 200, 255]))
    head = trimesh.creation.icosphere(subdivisions=2, radius=0.15)
    head.visual = trimesh.visual.TextureVisuals(material=PBRMaterial(baseColorFactor=[230, 200, 170, 255]))
    lamp = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    lamp.visual = trimesh.visual.TextureVisuals(
        material=PBRMaterial(baseColorFactor=[255, 240, 160, 255], emissiveFactor=[1.0, 0.9, 0.6]))
    scene.add_geometry(body, node_name="body", transform=trimesh.transformations.translation_matrix((0, 0.5, 0)))
    scene.add_geometry(head, node_name="head", transform=trimesh.transformations.translation_matrix((0, 1.2, 0)))
    scene.add_geometry(lamp, node_name="lamp", transform=trimesh.transformations.translation_matrix((0, 1.5, 0)))
    path = tmp_path / "figure.glb"
    path.write_bytes(scene.export(file_type="glb"))
    mesh = load_model(path)
    assert mesh.bounds[1][1] == pytest.approx(1.55, abs=1e-3)
    blue = np.all(np.isclose(mesh.colors[:, 0], [40 / 255, 80 / 255, 200 / 255], atol=0.01), axis=1)
    assert blue.sum() == 12
    assert mesh.emissive.sum() == 80 and not mesh.emissive[blue].any()
    anchor = model_anchor(mesh)
    assert anchor.mouth[1] == pytest.approx(1.2 - 0.42 * 0.15, abs=0.01)
    assert anchor.mouth[2] == pytest.approx(0.15, abs=0.03)
    geom = place(mesh, placement_matrix((1.0, 0.0, 0.0)), object_id=3)
    assert (geom.pattern == EMISSIVE).sum() == 80 and (geom.objects == 3).all()


def test_anchor_without_a_head_part_uses_the_top_front(tmp_path):
    mesh = scene3d.mesh_from_parts(_parts(trimesh.creation.box((0.5, 1.6, 0.4),
                                                                transform=trimesh.transformations.translation_matrix((0, 0.8, 0)))))
    anchor = model_anchor(mesh, head_height=1.45)
    assert 1.3 < anchor.mouth[1] < 1.6 and anchor.mouth[2] == pytest.approx(0.2)


def _parts(mesh):
    from storybuild.backends.embedded.model_io import Part

    colors = np.full((len(mesh.faces), 3, 3), 0.5, np.float32)
    return [Part(np.asarray(mesh.vertices), np.asarray(mesh.faces), colors)]


def test_unknown_or_broken_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(BackendError, match="cannot tell"):
        load_model(junk)
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(BackendError, match="cannot read 3D model"):
        load_model(broken)


def test_usd_without_usd_core_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pxr", None)  # as if usd-core were not installed
    path = tmp_path / "set.usda"
    path.write_text("#usda 1.0\n")
    with pytest.raises(BackendError) as err:
        load_model(path)
    assert "usd-core" in err.value.hint


@pytest.mark.skipif(importlib.util.find_spec("pxr") is None, reason="usd-core (the usd extra) is not installed")
def test_usd_stage_in_centimetres_z_up_with_transforms_and_face_colours(tmp_path):
    from pxr import Gf, Usd, UsdGeom, Vt

    from storybuild.backends.embedded.model_io import read_parts

    path = tmp_path / "set.usda"
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)  # centimetres
    xform = UsdGeom.Xform.Define(stage, "/World")
    xform.AddTranslateOp().Set(Gf.Vec3d(100.0, 0.0, 0.0))  # 1 m along +X
    mesh = UsdGeom.Mesh.Define(stage, "/World/head")
    # A 2 m tall quad standing in the X-Z plane (Z up), then a triangle: two polygons.
    mesh.GetPointsAttr().Set(Vt.Vec3fArray([(0, 0, 0), (100, 0, 0), (100, 0, 200), (0, 0, 200), (0, 50, 0)]))
    mesh.GetFaceVertexCountsAttr().Set(Vt.IntArray([4, 3]))
    mesh.GetFaceVertexIndicesAttr().Set(Vt.IntArray([0, 1, 2, 3, 0, 4, 1]))
    colors = mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.uniform)
    colors.Set(Vt.Vec3fArray([(1, 0, 0), (0, 0, 1)]))
    stage.GetRootLayer().Save()

    [part] = read_parts(path)
    assert part.name == "/World/head" and len(part.faces) == 3  # the quad as a fan of two, then the triangle
    corners = part.vertices[part.faces]
    # In metres, Y up, translated 1 m along X: the quad spans x 1..2 and rises to y = 2.
    assert np.allclose(part.vertices.min(axis=0), [1.0, 0.0, -0.5]) and np.allclose(part.vertices.max(axis=0), [2.0, 2.0, 0.0])
    assert np.allclose(corners[:2, :, 1].max(), 2.0)
    assert np.allclose(part.colors[:2], [1, 0, 0]) and np.allclose(part.colors[2], [0, 0, 1])
    mesh3d = load_model(path)
    assert mesh3d.head is not None and mesh3d.count == 3  # a part named "head" anchors a mouth


def test_fbx_without_assimp_names_the_extra(tmp_path, monkeypatch):
    for binding in ("pyassimp", "impasse"):  # as if neither were installed
        monkeypatch.setitem(sys.modules, binding, None)
    path = tmp_path / "model"
    path.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00")
    with pytest.raises(BackendError) as err:
        load_model(path)
    assert "pyassimp" in err.value.hint


def _assimp():
    """pyassimp with its library loaded, or None (the fbx extra, plus e.g. apt's libassimp5)."""
    try:
        import pyassimp
    except ImportError:
        return None
    except BaseException as exc:  # without the library pyassimp raises AssimpError, a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return None
    return pyassimp


@pytest.mark.skipif(_assimp() is None, reason="pyassimp or the assimp library is not installed")
def test_fbx_models_in_their_units_with_material_colours(tmp_path):
    pyassimp = _assimp()
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    (tmp_path / "box.mtl").write_text("newmtl paint\nKd 0.8 0.2 0.1\n")
    (tmp_path / "box.obj").write_text("mtllib box.mtl\nusemtl paint\n"
                                      + "".join(f"v {x} {y} {z}\n" for x, y, z in box.vertices)
                                      + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in box.faces))
    with pyassimp.load(str(tmp_path / "box.obj")) as scene:
        pyassimp.export(scene, str(tmp_path / "cm.fbx"), "fbxa")  # ASCII FBX 7.5, its unit the centimetre
    text = (tmp_path / "cm.fbx").read_text()
    assert '"UnitScaleFactor", "double", "Number", "", 1\n' in text
    (tmp_path / "m.fbx").write_text(text.replace('"UnitScaleFactor", "double", "Number", "", 1\n',
                                                 '"UnitScaleFactor", "double", "Number", "", 100\n'))

    in_cm, in_m = load_model(tmp_path / "cm.fbx"), load_model(tmp_path / "m.fbx")
    assert in_m.count == in_cm.count == 12
    assert np.allclose(in_m.bounds, [[-0.5, -1.0, -1.5], [0.5, 1.0, 1.5]], atol=1e-5)
    assert np.allclose(in_cm.bounds, in_m.bounds / 100.0, atol=1e-7)
    assert np.allclose(in_m.colors, [0.8, 0.2, 0.1], atol=1e-6)

    broken = tmp_path / "broken.fbx"
    broken.write_bytes(text[:400].encode())
    with pytest.raises(BackendError, match="cannot read FBX model broken.fbx"):
        load_model(broken)


def test_placement_facing_scale_and_normals():
    m = placement_matrix((1.0, 0.0, 2.0), (0.0, 90.0, 0.0), 2.0)
    assert (m[:3, :3] @ [0, 0, 1]) == pytest.approx([2.0, 0.0, 0.0], abs=1e-9)  # +Z turns to +X
    assert m[:3, 3] == pytest.approx([1.0, 0.0, 2.0])
    box = scene3d.mesh_from_parts(_parts(trimesh.creation.box((1, 1, 1))))
    geom = place(box, placement_matrix(None, None, (1.0, 3.0, 1.0)), 1)
    assert np.linalg.norm(geom.normals, axis=2) == pytest.approx(np.ones((12, 3)), abs=1e-5)


def test_crease_normals_keep_cube_edges_hard_and_spheres_smooth():
    cube = trimesh.creation.box((1, 1, 1))
    n = crease_normals(np.asarray(cube.vertices), np.asarray(cube.faces))
    assert np.allclose(n, np.repeat(cube.face_normals[:, None, :], 3, axis=1), atol=1e-6)
    ball = trimesh.creation.icosphere(subdivisions=2)
    n = crease_normals(np.asarray(ball.vertices), np.asarray(ball.faces))
    radial = ball.vertices[ball.faces] / np.linalg.norm(ball.vertices[ball.faces], axis=2, keepdims=True)
    assert np.einsum("fkc,fkc->fk", n, radial).min() > 0.99


def test_puppet_stands_faces_forward_and_has_a_head():
    mesh = puppet_mesh((0.2, 0.4, 0.9))
    lo, hi = mesh.bounds
    assert lo[1] == pytest.approx(0.0, abs=0.01) and 1.6 < hi[1] < 1.8
    assert mesh.head is not None
    anchor = model_anchor(mesh)
    assert anchor.forward == (0.0, 0.0, 1.0)
    assert anchor.mouth[2] > 0.1 and 1.4 < anchor.mouth[1] < 1.6
    assert mesh.count < 3000
