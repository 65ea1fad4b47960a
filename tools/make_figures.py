"""Regenerate the pictures of ``docs/analysis.md`` from a training run and the real samples.

    python tools/make_figures.py --run RUN_DIR [--early-epoch 3] [--out docs/images]
                                 [--shared-data ../shared/data] [--tensorboard TB_DIR] [--only NAME ...]

``RUN_DIR`` is a finished ``tools/train.py`` run of a PoseTrack-layout experiment on the
synthetic set (``checkpoints/best.pt`` and ``predictions/epoch_*/``). Figures (``--only``
takes their names):

- ``skeletons``: validation crops, GT skeleton in white, prediction with per-joint scores;
- ``clip_strip``: a T=3 clip of the fastest-moving training person, key frame framed;
- ``heatmaps``: predicted (top) vs target (bottom) heatmaps of six joints of one crop;
- ``motion_targets``: the MTPose motion-aware target ellipses on training crops (every frame
  labelled), next to the ``motion_prev`` target maps they outline;
- ``motion``: :mod:`vidpose.evaluation.motion_analysis` of the validation predictions of
  epoch ``--early-epoch`` (A) against the final ones (B): ``motion/*.png``;
- ``demo``: a frame of ``tools/demo.py`` output on a synthetic validation video (detector
  boxes of the synthetic set) and on the real 5-frame clip (whole-frame box);
- ``real_gt``: GT skeletons on the real PoseTrack18 and Sub-JHMDB sample frames.

``--tensorboard`` also writes every figure as an image to a TensorBoard event file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

from vidpose import heatmaps as hm
from vidpose.data.frames import decode_image
from vidpose.data.jhmdb import load_jhmdb_coco
from vidpose.data.keypoints import POSETRACK
from vidpose.data.loader import collate, to_device
from vidpose.data.posetrack import read_posetrack_file
from vidpose.data.synthetic import detections_path, generate
from vidpose.engine import builders
from vidpose.engine.checkpoint import load_checkpoint
from vidpose.engine.evaluator import predict_heatmaps
from vidpose.evaluation.motion_analysis import run_motion_analysis
from vidpose.viz import (
    caption,
    clip_strip,
    draw_skeleton,
    heatmap_grid,
    heatmap_overlay,
    hstack_padded,
    motion_ellipses,
)

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("skeletons", "clip_strip", "heatmaps", "motion_targets", "motion", "demo", "real_gt")
SHOWN_JOINTS = ("nose", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_ankle")
LIMB_ENDS = ("left_wrist", "right_wrist", "left_elbow", "right_elbow", "left_ankle", "right_ankle")
WHITE = (255, 255, 255)


class Context:
    """The run's model and config, the validation set as clips of three frames, and outputs."""

    def __init__(self, run: Path, out: Path, shared: Path, early_epoch: int) -> None:
        self.run, self.out, self.shared, self.early_epoch = run, out, shared, early_epoch
        self.ckpt = run / "checkpoints" / "best.pt"
        state = load_checkpoint(self.ckpt)
        self.cfg = OmegaConf.create(state["config"])
        self.layout, self.geometry = (
            builders.build_layout(self.cfg),
            builders.build_geometry(self.cfg),
        )
        if self.layout.name != POSETRACK.name:
            raise ValueError(
                f"{run}: make_figures needs a PoseTrack-layout run, got layout {self.layout.name!r}"
            )
        self.model = builders.build_model(self.cfg, self.layout, self.geometry)
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.index = builders.build_index(self.cfg, str(self.cfg.data.val.split))
        # the training split labels every frame: GT motion between adjacent frames exists there
        self.train_index = builders.build_index(self.cfg, str(self.cfg.data.train.split))
        self.pictures: dict[str, np.ndarray] = {}

    def clips(self, instances: Sequence, index=None):
        """Unaugmented clips (offsets -1, 0, 1) of instances of ``index`` (default: validation)."""
        clip_cfg = OmegaConf.merge(
            self.cfg, {"data": {"clip": {"offsets": [-1, 0, 1], "interval": 1}}}
        )
        index = self.index if index is None else index
        return builders.build_dataset(
            clip_cfg, index, list(instances), self.geometry, self.layout, False
        )

    @torch.no_grad()
    def predict(self, samples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Key-frame heatmaps ``(B, K, h, w)``, keypoints ``(B, K, 2)`` in input px and scores ``(B, K)``.

        The samples are 3-frame clips; the model gets the frames at its own offsets.
        """
        batch = to_device(collate(samples), "cpu")
        spec = builders.clip_spec(self.cfg)
        wanted = [o + 1 for o in spec.offsets]  # clips here are offsets (-1, 0, 1)
        frames = batch["frames"][:, wanted]
        maps = predict_heatmaps(
            self.model, frames, batch, self.layout, self.geometry, bool(self.cfg.codec.flip_test)
        )
        xy, scores = hm.decode(
            maps.numpy(),
            self.geometry,
            refine=str(self.cfg.codec.refine),
            sigma=builders.target_sigma(self.cfg),
        )
        return maps.numpy(), xy, scores

    def save(self, name: str, image: np.ndarray) -> None:
        """Write ``out/name`` (PNG, maximum compression) and keep it for TensorBoard."""
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(
            str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
        ):
            raise OSError(f"could not write {path}")
        self.pictures[name] = image
        print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")


def _fastest_instances(ctx: Context, count: int) -> list:
    """GT training instances with annotated neighbours, fastest mean joint speed first, one per video."""
    scored = []
    index = ctx.train_index
    for inst in index.gt_instances(min_visible=8):
        video = index.videos[inst.video]
        if not 0 < inst.frame < len(video) - 1:
            continue
        here = video.frames[inst.frame].people[inst.person]
        speeds = []
        for neighbour in (inst.frame - 1, inst.frame + 1):
            other = index.find_person(inst.video, neighbour, inst.track_id)
            if other is not None:
                both = (here.visible > 0) & (other.visible > 0)
                speeds.extend(
                    np.linalg.norm(here.keypoints[both] - other.keypoints[both], axis=1).tolist()
                )
        if speeds:
            scored.append((float(np.mean(speeds)), inst))
    scored.sort(key=lambda item: -item[0])
    chosen, videos = [], set()
    for _, inst in scored:
        if inst.video not in videos:
            chosen.append(inst)
            videos.add(inst.video)
    return chosen[:count]


def _labelled_instances(ctx: Context, count: int) -> list:
    """The first GT validation instances with many visible joints, one per video."""
    chosen, videos = [], set()
    for inst in ctx.index.gt_instances(min_visible=12):
        if inst.video not in videos and 0 < inst.frame < len(ctx.index.videos[inst.video]) - 1:
            chosen.append(inst)
            videos.add(inst.video)
        if len(chosen) == count:
            break
    return chosen


def _upscale(image: np.ndarray, factor: int = 2) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def fig_skeletons(ctx: Context) -> None:
    """GT (white) and predicted skeletons with per-joint scores on four validation crops."""
    dataset = ctx.clips(_labelled_instances(ctx, 4))
    samples = [dataset[i] for i in range(len(dataset))]
    _, xy, scores = ctx.predict(samples)
    tiles = []
    for sample, points, score in zip(samples, xy, scores):
        crop = _upscale(sample["frames"][1])
        tile = draw_skeleton(
            crop,
            sample["keypoints"][1] * 2,
            sample["visible"][1],
            ctx.layout,
            threshold=0.5,
            colour=WHITE,
            radius=2,
        )
        tiles.append(
            draw_skeleton(
                tile, points * 2, score, ctx.layout, threshold=0.2, radius=3, show_scores=True
            )
        )
    ctx.save(
        "skeletons_synthetic.png",
        caption(hstack_padded(tiles), "GT white, prediction coloured with joint scores"),
    )


def fig_clip_strip(ctx: Context) -> None:
    """The three frames of the fastest training person's clip with GT skeletons."""
    sample = ctx.clips(_fastest_instances(ctx, 1), ctx.train_index)[0]
    strip = clip_strip(
        np.stack([_upscale(f) for f in sample["frames"]]),
        sample["keypoints"] * 2,
        sample["visible"],
        ctx.layout,
        int(sample["key_index"]),
    )
    ctx.save(
        "clip_strip_synthetic.png", caption(strip, "frames t-1, t (key, framed), t+1 of one crop")
    )


def fig_heatmaps(ctx: Context) -> None:
    """Predicted vs target heatmaps (the experiment's Gaussian target) of six joints."""
    sample = ctx.clips(_labelled_instances(ctx, 1))[0]
    maps, _, _ = ctx.predict([sample])
    target, _ = hm.gaussian_np(
        sample["keypoints"][1],
        sample["visible"][1],
        ctx.geometry,
        builders.target_sigma(ctx.cfg) or 2.0,
    )
    joints = [ctx.layout.index(n) for n in SHOWN_JOINTS]
    grid = heatmap_grid(maps[0, joints], target[joints], scale=3)
    crop = draw_skeleton(
        _upscale(sample["frames"][1]),
        sample["keypoints"][1] * 2,
        sample["visible"][1],
        ctx.layout,
        threshold=0.5,
        radius=2,
    )
    picture = hstack_padded(
        [crop, caption(grid, "predicted (top) vs target (bottom): nose, elbows, wrists, l. ankle")]
    )
    ctx.save("heatmaps_synthetic.png", picture)


def fig_motion_targets(ctx: Context) -> None:
    """Motion-aware target ellipses (MTPose sigma0 = delta = 3) and the motion_prev maps they outline."""
    dataset = ctx.clips(_fastest_instances(ctx, 3), ctx.train_index)
    joints = [ctx.layout.index(n) for n in LIMB_ENDS]
    tiles = []
    for sample in (dataset[i] for i in range(len(dataset))):
        kp, vis, clamped = sample["keypoints"], sample["visible"], sample["clamped"]
        crop = _upscale(sample["frames"][1])
        scaled = hm.Geometry(
            (ctx.geometry.input_hw[0] * 2, ctx.geometry.input_hw[1] * 2),
            ctx.geometry.stride * 2,
            ctx.geometry.convention,
        )
        ellipses = motion_ellipses(
            crop, kp * 2, vis, scaled, key=1, clamped=clamped, n_sigma=2.0, joints=joints
        )
        targets = hm.motion_aware_np(kp, vis, ctx.geometry, key=1, clamped=clamped)
        overlay = heatmap_overlay(crop, targets["motion_prev"][joints], alpha=0.6)
        tiles.append(hstack_padded([ellipses, overlay]))
    ctx.save(
        "motion_targets_synthetic.png",
        caption(
            hstack_padded(tiles),
            "wrists, elbows, ankles: 2-sigma ellipses (yellow prev, cyan next) | motion_prev maps",
        ),
    )


def fig_motion(ctx: Context) -> None:
    """Motion-stratified AP of an early epoch (A) against the final epoch (B) of the run."""
    gt_dir = Path(ctx.index.videos[0].source_file).parent
    epochs = sorted((ctx.run / "predictions").glob("epoch_*"))
    early = ctx.run / "predictions" / f"epoch_{ctx.early_epoch:03d}"
    if not early.is_dir() or not epochs:
        raise FileNotFoundError(
            f"{ctx.run}/predictions needs epoch_{ctx.early_epoch:03d} and a final epoch"
        )
    with tempfile.TemporaryDirectory() as tmp:
        record = run_motion_analysis(
            gt_dir,
            early,
            Path(tmp),
            pred_b=epochs[-1],
            names=(f"epoch {ctx.early_epoch}", f"epoch {int(epochs[-1].name[6:])}"),
        )
        for name in (
            "motion_histogram",
            "ap_by_motion",
            "ap_by_motion_groups",
            "ap_gain_vs_motion",
        ):
            ctx.save(
                f"motion/{name}.png",
                cv2.cvtColor(cv2.imread(str(Path(tmp) / f"{name}.png")), cv2.COLOR_BGR2RGB),
            )
        (ctx.out / "motion" / "motion_ap.txt").write_text(record["_text"] + "\n", encoding="utf-8")


def _load_demo() -> object:
    spec = importlib.util.spec_from_file_location("vidpose_demo_tool", ROOT / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_video_frame(path: Path, index: int = 0) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise ValueError(f"cannot read frame {index} of {path}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _fit_width(image: np.ndarray, width: int) -> np.ndarray:
    return cv2.resize(
        image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA
    )


def fig_demo(ctx: Context) -> None:
    """tools/demo.py on a synthetic validation video (its detector boxes) and on the real clip."""
    demo = _load_demo()
    video = ctx.index.videos[0]
    root = Path(ctx.index.image_root)
    frame_of = {f.image_id: i for i, f in enumerate(video.frames)}
    boxes = json.loads(
        detections_path(
            generate(str(ctx.cfg.data.dataset.preset), str(ctx.cfg.data.dataset.cache_root))
        ).read_text()
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = (root / video.frames[0].file_name).parent
        own = [
            dict(b, image_id=frame_of[b["image_id"]]) for b in boxes if b["image_id"] in frame_of
        ]
        (tmp / "boxes.json").write_text(json.dumps(own))
        demo.main(
            [
                "--frames",
                str(frames),
                "--ckpt",
                str(ctx.ckpt),
                "--detections",
                str(tmp / "boxes.json"),
                "--out",
                str(tmp / "synthetic"),
            ]
        )
        synthetic = _first_video_frame(tmp / "synthetic" / f"{frames.name}.mp4", 8)
        clip = ctx.shared / "posetrack18_mini" / "videos" / "000001_mpiinew_test"
        demo.main(
            [
                "--frames",
                str(clip),
                "--ckpt",
                str(ctx.ckpt),
                "--whole-frame",
                "--out",
                str(tmp / "real"),
            ]
        )
        real = _first_video_frame(tmp / "real" / "000001_mpiinew_test.mp4", 2)
    ctx.save(
        "demo_synthetic.png",
        caption(_upscale(synthetic), "tools/demo.py: synthetic val video, detector boxes"),
    )
    ctx.save(
        "demo_real.png",
        caption(
            _fit_width(real, 480),
            "tools/demo.py on the real clip, whole-frame box (synthetic-trained model)",
        ),
    )


def fig_real_gt(ctx: Context) -> None:
    """GT skeletons on the real PoseTrack18 and Sub-JHMDB sample frames."""
    pt_dir = ctx.shared / "posetrack18_mini"
    record = read_posetrack_file(min((pt_dir / "annotations" / "val").glob("*.json")))
    frame = record.frames[0]
    image = decode_image(str(pt_dir / frame.file_name))
    for person in frame.people:
        image = draw_skeleton(
            image, person.keypoints, person.visible, POSETRACK, threshold=0.5, radius=8
        )
    pt_picture = caption(_fit_width(image, 480), f"PoseTrack18 {record.video_id}: GT")
    jhmdb = load_jhmdb_coco(
        ctx.shared / "jhmdb_mini" / "test_jhmdb_sub1.json", ctx.shared / "jhmdb_mini", "jhmdb_mini"
    )
    jframe = jhmdb.videos[0].frames[0]
    jimage = decode_image(str(Path(jhmdb.image_root) / jframe.file_name))
    for person in jframe.people:
        jimage = draw_skeleton(
            jimage, person.keypoints, person.visible, jhmdb.layout, threshold=0.5
        )
    ctx.save("real_gt.png", hstack_padded([pt_picture, caption(jimage, "Sub-JHMDB: GT")]))


BUILDERS: dict[str, Callable[[Context], None]] = {
    "skeletons": fig_skeletons,
    "clip_strip": fig_clip_strip,
    "heatmaps": fig_heatmaps,
    "motion_targets": fig_motion_targets,
    "motion": fig_motion,
    "demo": fig_demo,
    "real_gt": fig_real_gt,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Build the chosen figures (all by default) into ``--out``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="a finished synthetic training run directory")
    parser.add_argument(
        "--early-epoch", type=int, default=3, help="epoch whose predictions are set A of 'motion'"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument(
        "--shared-data", default=str(ROOT.parent / "shared" / "data"), help="the real data samples"
    )
    parser.add_argument(
        "--tensorboard", default=None, help="also write the figures to this TensorBoard log dir"
    )
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    ctx = Context(Path(args.run), Path(args.out), Path(args.shared_data), args.early_epoch)
    for name in args.only:
        BUILDERS[name](ctx)
    if args.tensorboard:
        from vidpose.engine.logging import RunLogger

        logger = RunLogger(Path(args.tensorboard))
        for name, image in ctx.pictures.items():
            logger.image(f"figures/{name.removesuffix('.png')}", image, 0)
        logger.close()
        print(f"TensorBoard images written to {args.tensorboard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
