"""Where a run's numbers come from: code, configuration, data, boxes, seed, device and versions.

``run_provenance`` returns a JSON-ready dict that the trainer and ``tools/eval.py`` store under
``"provenance"`` in ``<run>/metrics.json``; ``tools/leaderboard.py`` groups and checks runs by
it (the same data set identity and box source, one row per method and seed).

- ``code``: the git commit of the vidpose checkout and whether its work tree was dirty (None
  outside a git checkout, e.g. an installed wheel), and the vidpose version;
- ``config_hash``: sha256 of the resolved configuration (JSON, sorted keys), minus the keys that
  name where the run writes (``paths.output_dir``, ``hydra``), so equal configs hash equal;
- ``data``: the dataset entry, the evaluated split and a digest of its annotation content (every
  video, frame, person, keypoint and visibility of the index), plus for the synthetic sets the
  preset and the generator digest, and the folder the annotation files were read from with a
  digest of every file in it (names and contents);
- ``boxes``: ``gt`` or the detector file with its sha256;
- ``seed``, ``device`` and the versions of python, torch, timm and numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["run_provenance", "config_hash", "index_digest", "files_digest", "git_state", "annotation_dir"]

#: top-level keys that say where a run writes, not what it computes
_LOCATION_KEYS = ("hydra",)
_LOCATION_PATHS = (("paths", "output_dir"),)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_digest(paths: Sequence[Path], root: Path) -> str:
    """sha256 over the sorted ``(relative name, sha256 of content)`` pairs of ``paths``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root).as_posix()}\0{_sha256_file(path)}\n".encode())
    return digest.hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of a resolved configuration (plain mapping) without the keys that only locate the run."""
    plain = {k: v for k, v in config.items() if k not in _LOCATION_KEYS}
    for section, key in _LOCATION_PATHS:
        if isinstance(plain.get(section), Mapping):
            plain[section] = {k: v for k, v in plain[section].items() if k != key}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def index_digest(index: Any) -> str:
    """sha256 of an index's annotation content: videos, frames, people, keypoints, visibility."""
    digest = hashlib.sha256()
    for video in index.videos:
        digest.update(f"video {video.video_id} {len(video.frames)}\n".encode())
        for frame in video.frames:
            digest.update(f"frame {frame.image_id} {frame.frame_index} {int(frame.is_labeled)}\n".encode())
            for person in frame.people:
                digest.update(f"person {person.track_id}\n".encode())
                digest.update(person.keypoints.astype("<f4").tobytes())
                digest.update(person.visible.astype("<f4").tobytes())
    return digest.hexdigest()


def git_state(directory: Path) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git work tree holding ``directory``; None values outside one."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _versions() -> dict[str, str | None]:
    import numpy
    import torch

    import vidpose

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # timm is a dependency, but a provenance record must never fail a run
        timm_version = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm_version,
        "numpy": numpy.__version__,
        "vidpose": vidpose.__version__,
    }


def _synthetic_identity(dataset: Mapping[str, Any]) -> dict[str, Any] | None:
    from vidpose.data import synthetic

    if dataset.get("name") not in ("synthetic", "synthetic_jhmdb"):
        return None
    return synthetic.identity(
        str(dataset.get("preset", "default")), dataset.get("seed"), dataset.get("degradation")
    )


def annotation_dir(index: Any) -> Path | None:
    """The folder holding an index's annotation files (their common parent), None if unknown."""
    dirs = sorted({str(Path(v.source_file).parent) for v in index.videos if getattr(v, "source_file", None)})
    return Path(os.path.commonpath(dirs)) if dirs else None


def _data_identity(cfg: Mapping[str, Any], index: Any) -> dict[str, Any]:
    data = cfg.get("data") or {}
    dataset = dict(data.get("dataset") or {})
    identity: dict[str, Any] = {
        "dataset": dataset.get("name"),
        "split": index.name,
        "index_digest": index_digest(index),
        "videos": len(index.videos),
        "people": index.num_people(),
    }
    synthetic = _synthetic_identity(dataset)
    if synthetic is not None:
        identity["synthetic"] = synthetic
    folder = annotation_dir(index)
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        identity["annotation_dir"] = str(folder)
        identity["annotation_files"] = len(files)
        identity["annotation_digest"] = files_digest(files, folder)
    return identity


def _boxes(cfg: Mapping[str, Any]) -> dict[str, Any]:
    val = (cfg.get("data") or {}).get("val") or {}
    source = val.get("boxes", "gt")
    if source != "detections":
        return {"source": source}
    path = Path(str(val.get("detections")))
    return {
        "source": "detections",
        "file": str(path),
        "sha256": _sha256_file(path) if path.is_file() else None,
        "score_threshold": val.get("box_score_threshold"),
    }


def run_provenance(cfg: Mapping[str, Any], index: Any | None, device: str) -> dict[str, Any]:
    """The provenance record of a run (module docstring) from its resolved config (plain mapping)."""
    import vidpose

    record: dict[str, Any] = {
        "code": {**git_state(Path(vidpose.__file__).resolve().parent), "vidpose": vidpose.__version__},
        "config_hash": config_hash(cfg),
        "exp_name": cfg.get("exp_name"),
        "task": cfg.get("task", "pose"),
        "seed": cfg.get("seed"),
        "device": device,
        "boxes": _boxes(cfg),
        "versions": _versions(),
    }
    if index is not None:
        record["data"] = _data_identity(cfg, index)
    return record
