import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vidpose.data.keypoints import POSETRACK  # noqa: E402
from vidpose.heatmaps import (  # noqa: E402
    GaussianTarget,
    Geometry,
    MotionAwareTarget,
    TargetGenerator,
    box_to_center_scale,
    crop_to_image,
    decode,
    flip_back,
    motion_aware,
)
from vidpose.registry import TARGETS, RegistryError  # noqa: E402

MSRA = Geometry((256, 192), 4, "msra")
UDP = Geometry((256, 192), 4, "udp")


def random_batch(seed, batch=3, frames=3, joints=17):
    rng = np.random.default_rng(seed)
    base = rng.uniform([20, 20], [170, 235], size=(batch, 1, joints, 2))
    xy = base + rng.normal(0.0, 12.0, size=(batch, frames, joints, 2))
    visible = (rng.uniform(size=(batch, frames, joints)) > 0.1).astype(np.float32)
    clamped = np.zeros((batch, frames), dtype=bool)
    return torch.tensor(xy, dtype=torch.float32), torch.tensor(visible), torch.tensor(clamped)


def test_registry_builds_both_generators_with_runtime_geometry():
    assert {"gaussian", "motion_aware"} <= set(TARGETS.names())
    gen = TARGETS.build({"name": "gaussian", "sigma": 3.0}, geometry=UDP)
    assert isinstance(gen, GaussianTarget) and gen.sigma == 3.0 and gen.geometry is UDP
    gen = TARGETS.build({"name": "motion_aware", "delta": 2.0, "missing_motion": "ignore"}, geometry=MSRA)
    assert isinstance(gen, MotionAwareTarget) and gen.options["delta"] == 2.0
    assert gen.outputs == ("heatmap", "weight", "motion_prev", "motion_next", "weight_prev", "weight_next")
    with pytest.raises(RegistryError, match="sigma0"):
        TARGETS.build({"name": "motion_aware", "sigma": 3.0}, geometry=UDP)
    with pytest.raises(ValueError, match="variant"):
        TARGETS.build({"name": "motion_aware", "variant": "elliptic"}, geometry=UDP)
    with pytest.raises(TypeError, match="Geometry"):
        GaussianTarget((256, 192))


def test_gaussian_target_key_frame_and_all_frames():
    xy, visible, clamped = random_batch(0, frames=5)
    gen = GaussianTarget(UDP, sigma=2.0)
    out = gen(xy, visible, clamped, key_index=2)
    assert set(out) == set(gen.outputs)
    assert out["heatmap"].shape == (3, 17, 64, 48) and out["weight"].shape == (3, 17)
    assert out["heatmap_all"].shape == (3, 5, 17, 64, 48) and out["weight_all"].shape == (3, 5, 17)
    assert torch.equal(out["heatmap"], out["heatmap_all"][:, 2])
    only = gen(xy, visible, clamped, key_index=2, names=("heatmap", "weight"))
    assert set(only) == {"heatmap", "weight"} and torch.equal(only["heatmap"], out["heatmap"])
    assert torch.equal(out["weight_all"], (visible > 0).float())  # every joint lies inside the map


def test_motion_aware_target_matches_the_function():
    xy, visible, clamped = random_batch(1)
    clamped[0, 0] = True
    gen = MotionAwareTarget(UDP)
    out = gen(xy, visible, clamped, key_index=1)
    ref = motion_aware(xy, visible, UDP, 1, clamped=clamped)
    assert set(out) == set(gen.outputs)
    for name in gen.outputs:
        assert torch.equal(out[name], ref[name])
    assert gen.last_oversized.shape == (3,) and int(gen.last_oversized.sum()) == 0


def test_generator_accepts_numpy_and_checks_inputs():
    xy, visible, clamped = random_batch(2)
    gen = MotionAwareTarget(MSRA)
    out = gen(xy.numpy(), visible.numpy(), clamped.numpy(), 1)
    assert isinstance(out["heatmap"], torch.Tensor)
    with pytest.raises(ValueError, match="key_index 3"):
        gen(xy, visible, clamped, 3)
    with pytest.raises(ValueError, match=r"\(B, T, K, 2\)"):
        gen(xy[:, 0], visible, clamped, 1)
    with pytest.raises(ValueError, match="clamped"):
        gen(xy, visible, clamped[:, :2], 1)
    with pytest.raises(ValueError, match="unknown target"):
        gen(xy, visible, clamped, 1, names=("heatmap_all",))
    xy[1, 2, 9] = float("nan")
    with pytest.raises(ValueError, match=r"joint 9 \(left_wrist\) at sample 1, frame 2"):
        gen(xy, visible.clone().fill_(1), clamped, 1, joint_names=POSETRACK)
    assert issubclass(GaussianTarget, TargetGenerator) and issubclass(MotionAwareTarget, TargetGenerator)


def test_flip_and_swap_before_motion_mirrors_the_targets():
    # The flipped clip (x -> W - 1 - x in every frame, left/right slots swapped) must give the
    # mirror image of the targets after the channel swap: motion is computed after the flip.
    xy, visible, clamped = random_batch(3)
    perm = torch.as_tensor(POSETRACK.flip_permutation())
    flipped_xy = UDP.flip_input_x(xy)[:, :, perm]
    flipped_visible = visible[:, :, perm]
    gen = MotionAwareTarget(UDP)
    plain = gen(xy, visible, clamped, 1)
    flipped = gen(flipped_xy, flipped_visible, clamped, 1)
    for name in ("heatmap", "motion_prev", "motion_next"):
        assert (flip_back(flipped[name], POSETRACK, UDP) - plain[name]).abs().max() < 1e-5, name
    for name in ("weight", "weight_prev", "weight_next"):
        assert torch.equal(flipped[name][:, perm], plain[name])
    # the motion maps really are elongated differently from H_o, so the check has teeth
    assert (plain["motion_prev"] - plain["heatmap"]).abs().max() > 0.1


def _posetrack_people(root):
    people = []
    for path in sorted((root / "annotations" / "val").glob("*.json")):
        for ann in json.loads(path.read_text())["annotations"]:
            keypoints = np.asarray(ann.get("keypoints") or [], dtype=np.float64).reshape(-1, 3)
            if len(keypoints) == 17 and "bbox" in ann and (keypoints[:, 2] > 0).any():
                people.append((keypoints, np.asarray(ann["bbox"], dtype=np.float64)))
    return people


@pytest.mark.parametrize("geo, tolerance", [(UDP, 0.5), (MSRA, 2.0)], ids=["udp", "msra"])
def test_posetrack18_round_trip(posetrack18_mini, geo, tolerance):
    # GT -> crop -> heatmap (torch, sigma 2) -> DARK decode -> image px. udp stays within
    # 0.5 input px; msra encodes the rounded centre round(x / 4), so its bound is half the
    # stride (2 input px) whatever the refinement.
    people = _posetrack_people(posetrack18_mini)
    assert len(people) >= 10
    height, width = geo.input_hw
    gen = GaussianTarget(geo, sigma=2.0)
    checked = 0
    for keypoints, box in people:
        center, size = box_to_center_scale(box, geo.aspect_ratio, 1.25)
        crop_xy = geo.image_to_input(keypoints[:, :2], center, size)
        inside = (crop_xy >= 0).all(axis=1) & (crop_xy[:, 0] <= width - 1) & (crop_xy[:, 1] <= height - 1)
        visible = (keypoints[:, 2] > 0) & inside
        out = gen(crop_xy[None, None], visible[None, None].astype(np.float32), np.zeros((1, 1), bool), 0)
        decoded, scores = decode(out["heatmap"], geo, refine="dark", sigma=2.0)
        error = np.abs(decoded[0].numpy() - crop_xy)[visible]
        assert error.max() <= tolerance + 1e-4
        image_xy = crop_to_image(decoded.numpy(), center[None], size[None], geo)[0]
        pixel = size / np.array([width - 1, height - 1]) if geo.convention == "udp" else size / width
        assert (np.abs(image_xy - keypoints[:, :2])[visible] <= (tolerance + 1e-4) * pixel).all()
        assert (scores[0].numpy()[visible] > 0.9).all()
        checked += int(visible.sum())
    assert checked >= 150


@pytest.mark.parametrize("geo", [MSRA, UDP], ids=["msra", "udp"])
def test_exact_positions_on_synthetic_points(geo):
    # points on heatmap-pixel centres come back exactly with every refinement
    hm_xy = np.array([[[10.0, 12.0], [30.0, 40.0], [24.0, 50.0]]])
    xy = np.asarray(geo.to_input(hm_xy))
    out = GaussianTarget(geo, sigma=2.0)(xy[:, None], np.ones((1, 1, 3)), np.zeros((1, 1), bool), 0)
    for refine in ("none", "quarter", "dark"):
        decoded, _ = decode(out["heatmap"], geo, refine=refine)
        assert np.abs(decoded.numpy() - xy).max() < 1e-4, refine


def test_a_joint_that_leaves_the_crop_between_frames_keeps_its_motion_aware_target():
    # MTPose: the fastest joints are the ones that leave the crop; the clip transform keeps their
    # annotated position and the target reads the motion from it (the review's finding)
    torch = pytest.importorskip("torch")
    from vidpose.data.keypoints import POSETRACK
    from vidpose.data.transforms import AugmentParams, ClipTransform
    from vidpose.heatmaps import motion_aware_np

    geo = Geometry((64, 48), 4, "msra")
    k = POSETRACK.index("left_wrist")
    keypoints = np.zeros((3, POSETRACK.num_joints, 2))
    visible = np.zeros((3, POSETRACK.num_joints))
    # crop: centre (50, 50), 48 x 64 image px = the input, so input px = image px - (26, 18)
    keypoints[:, k] = [[2.0, 50.0], [30.0, 50.0], [31.0, 50.0]]  # frame t-1: x_in = -24, outside
    visible[:, k] = 1
    frames = [np.zeros((100, 100, 3), dtype=np.uint8)] * 3
    transform = ClipTransform(geo, POSETRACK, train=False)
    _, kp, vis, _, annotated = transform.apply(frames, keypoints, visible, AugmentParams(np.array([50.0, 50.0]), np.array([48.0, 64.0])))
    assert vis[:, k].tolist() == [0, 1, 1] and annotated[:, k].tolist() == [1, 1, 1]
    target = TARGETS.build({"name": "motion_aware"}, geometry=geo)
    out = target(torch.tensor(kp)[None], torch.tensor(vis)[None], torch.zeros(1, 3, dtype=torch.bool), 1,
                 annotated=torch.tensor(annotated)[None])
    # motion 28 input px = 7 heatmap px along x: sigma_par = 3 + 4/3, sigma_perp = 3 - 4/3
    ref = motion_aware_np(kp, np.ones((3, POSETRACK.num_joints)) * (annotated > 0), geo, key=1)
    assert out["weight_prev"][0, k] == 1.0
    assert np.abs(out["motion_prev"][0, k].numpy() - ref["motion_prev"][k]).max() < 1e-5
    row = out["motion_prev"][0, k].numpy()[int(round(float(kp[1, k, 1]) / 4))]
    assert (row > 0.01).sum() > (out["heatmap"][0, k].numpy()[int(round(float(kp[1, k, 1]) / 4))] > 0.01).sum()
    # without the annotation (the old behaviour) the fastest joint got the plain sigma0 circle
    old = target(torch.tensor(kp)[None], torch.tensor(vis)[None], torch.zeros(1, 3, dtype=torch.bool), 1)
    assert torch.equal(old["motion_prev"][0, k], old["heatmap"][0, k])
