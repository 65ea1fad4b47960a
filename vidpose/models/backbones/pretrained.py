"""Reading official pose checkpoints and renaming them into vidpose's timm-based backbones.

One converter per checkpoint layout (``../shared/specs/pretrained.md``), detected from the key
signature:

================  ======  ====================================================================
layout            family  signature
================  ======  ====================================================================
vitpose_official  vit     ``backbone.patch_embed.proj.weight`` (+ ``keypoint_head.*``)
vitpose_mmpose    vit     ``backbone.patch_embed.projection.weight``, ``backbone.layers.*``
mae               vit     unprefixed ``patch_embed.proj.weight`` + ``blocks.*`` (top level ``model``)
hrnet_official    hrnet   unprefixed ``conv1.weight`` + ``stage4.*`` (+ ``final_layer.*``)
hrnet_mmpose      hrnet   ``backbone.conv1.weight`` + ``backbone.stage4.*`` (+ ``[keypoint_]head.*``)
vidpose_vit       vit     ``backbone.vit.*`` (+ ``head.*``), written by tools/convert_checkpoint.py
vidpose_hrnet     hrnet   ``backbone.hrnet.*`` (+ ``head.*``), written by tools/convert_checkpoint.py
================  ======  ====================================================================

A conversion splits a state dict into the *trunk* (timm key names of the timm module inside a
vidpose backbone), the *head* (classic pose-head names: ``deconv_layers.{0,1,3,4}.*``,
``final_layer.*``), and *dropped* known extras. Unknown keys are errors. Loading compares the
trunk with the module strictly (missing, unexpected and shape-mismatched keys all fail) and
returns a :class:`KeyReport`.

Files are read with ``torch.load(weights_only=True)`` only (:mod:`vidpose.weights_only`): numpy
arrays, scalars and dtypes in a checkpoint's metadata (mmcv-era files) are accepted, every other
pickled global is refused.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from vidpose.weights_only import UnsafeCheckpointError, load_weights_only

__all__ = [
    "CheckpointError",
    "KeyReport",
    "PretrainedParts",
    "LAYOUTS",
    "VIDPOSE_TRUNK_PREFIX",
    "VIDPOSE_HEAD_PREFIX",
    "read_checkpoint",
    "unwrap_state_dict",
    "detect_layout",
    "convert_state_dict",
    "read_pretrained",
    "single_frame_model_parts",
    "extract_head_state",
    "fold_class_slot",
    "infer_grid",
    "resample_pos_embed",
    "compare_keys",
    "load_trunk_state",
    "log_report",
]

logger = logging.getLogger(__name__)

# layout name -> backbone family it initialises
LAYOUTS: dict[str, str] = {
    "vitpose_official": "vit",
    "vitpose_mmpose": "vit",
    "mae": "vit",
    "hrnet_official": "hrnet",
    "hrnet_mmpose": "hrnet",
    "vidpose_vit": "vit",
    "vidpose_hrnet": "hrnet",
}

# vidpose's own layout: the backbone module keeps its timm model under the family's name
VIDPOSE_TRUNK_PREFIX: dict[str, str] = {"vit": "backbone.vit.", "hrnet": "backbone.hrnet."}
VIDPOSE_HEAD_PREFIX = "head."

_MAX_LISTED = 40


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message names file and keys."""


# --------------------------------------------------------------------------------------------
# reading


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file weights-only and return its flat ``{key: Tensor}`` state dict.

    Unwraps ``state_dict`` / ``model`` and strips DataParallel's ``module.`` prefix. numpy
    arrays/scalars/dtypes in the metadata are accepted (:mod:`vidpose.weights_only`); any other
    pickled global is refused with the names of the offenders (never ``weights_only=False``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (only local files are read)")
    try:
        obj = load_weights_only(path)
    except UnsafeCheckpointError as error:
        raise CheckpointError(str(error)) from None
    except Exception as exc:  # corrupt or foreign files fail in many ways inside torch.load
        raise CheckpointError(
            f"checkpoint {path} cannot be read by torch.load ({type(exc).__name__}: {exc})"
        ) from exc
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, Tensor]:
    """``{'state_dict': sd}`` / ``{'model': sd}`` / ``sd`` -> ``sd`` with ``module.`` stripped."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source}: expected a dict (a state dict or a wrapper), got {type(obj).__name__}"
        )
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    not_tensors = sorted(k for k, v in obj.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{source}: the state dict holds entries that are not tensors: {_listing(not_tensors)} "
            "(expected a state dict, or a dict with 'state_dict' or 'model')"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


# --------------------------------------------------------------------------------------------
# layouts


def detect_layout(state: Mapping[str, Tensor], *, source: str = "checkpoint") -> str:
    """Name the layout of an unwrapped state dict from its key signature (see module docstring)."""
    keys = set(state)

    def has_prefix(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has_prefix(VIDPOSE_TRUNK_PREFIX["vit"]):
        return "vidpose_vit"
    if has_prefix(VIDPOSE_TRUNK_PREFIX["hrnet"]):
        return "vidpose_hrnet"
    if "backbone.patch_embed.proj.weight" in keys:
        return "vitpose_official"
    if "backbone.patch_embed.projection.weight" in keys or has_prefix("backbone.layers."):
        return "vitpose_mmpose"
    if "patch_embed.proj.weight" in keys and has_prefix("blocks."):
        return "mae"
    if "backbone.conv1.weight" in keys and has_prefix("backbone.stage4."):
        return "hrnet_mmpose"
    if "conv1.weight" in keys and has_prefix("stage4."):
        return "hrnet_official"
    sample = sorted(keys)[:12]
    raise CheckpointError(
        f"{source}: unknown checkpoint layout. Known signatures: 'backbone.patch_embed.proj.weight' "
        "(ViTPose), 'backbone.patch_embed.projection.weight' (mmpose 1.x ViTPose), unprefixed "
        "'patch_embed.proj.weight' + 'blocks.*' (MAE), 'conv1.weight' + 'stage4.*' (pose HRNet), "
        "'backbone.conv1.weight' + 'backbone.stage4.*' (mmpose HRNet), 'backbone.vit.*' / "
        f"'backbone.hrnet.*' (vidpose). First keys of this file: {', '.join(sample) or '(none)'}"
    )


@dataclass
class PretrainedParts:
    """A converted checkpoint: trunk in timm names, head in classic head names, dropped extras."""

    source: str
    layout: str
    trunk: dict[str, Tensor]
    head: dict[str, Tensor] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        """``vit`` or ``hrnet``: which backbone family the trunk initialises."""
        return LAYOUTS[self.layout]


_VIT_BLOCK_PARAMS = frozenset(
    f"{module}.{kind}"
    for module in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for kind in ("weight", "bias")
)
_MMPOSE_VIT_BLOCK = {
    "ln1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.proj",
    "ln2": "norm2",
    "ffn.layers.0.0": "mlp.fc1",
    "ffn.layers.1": "mlp.fc2",
}


def _is_block_param(key: str, prefix: str) -> bool:
    """True for ``<prefix>blocks.<i>.<sub-name>`` with a sub-name of the ViT block grammar."""
    match = re.fullmatch(re.escape(prefix) + r"blocks\.\d+\.(.+)", key)
    return match is not None and match.group(1) in _VIT_BLOCK_PARAMS


_HRNET_TRUNK = re.compile(r"^(conv[12]|bn[12]|layer1|transition[123]|stage[234])\.")


def infer_grid(num_tokens: int) -> tuple[int, int] | None:
    """Patch grid ``(h, w)`` of a position embedding: 4:3 portrait (pose crops) or square, else None."""
    k = math.isqrt(num_tokens // 12)
    if 12 * k * k == num_tokens and k > 0:
        return 4 * k, 3 * k
    s = math.isqrt(num_tokens)
    if s * s == num_tokens and s > 0:
        return s, s
    return None


def fold_class_slot(pos_embed: Tensor) -> Tensor:
    """``(1, 1+N, D)`` -> ``(1, N, D)``: add the leading slot to every position (ViTPose's forward)."""
    return pos_embed[:, 1:] + pos_embed[:, :1]


def _pos_embed_for_timm(
    pos_embed: Tensor, *, prefer_slot: bool, source: str, notes: list[str]
) -> Tensor:
    """Fold the class slot if there is one: the row count whose grid is 4:3 or square decides.

    When both ``N`` and ``N - 1`` are valid grids, ``prefer_slot`` (the layout's norm) decides.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise CheckpointError(
            f"{source}: pos_embed has shape {tuple(pos_embed.shape)}, expected (1, N, D)"
        )
    n = pos_embed.shape[1]
    candidates = (True, False) if prefer_slot else (False, True)
    has_slot = next((c for c in candidates if infer_grid(n - int(c)) is not None), None)
    if has_slot is None:
        raise CheckpointError(
            f"{source}: pos_embed has {n} rows; neither {n} nor {n - 1} positions form a 4:3 or "
            "square patch grid, so it is unclear whether a class slot is present"
        )
    if not has_slot:
        return pos_embed
    notes.append(f"pos_embed: folded the class slot into {n - 1} positions (pe[:, 1:] + pe[:, :1])")
    return fold_class_slot(pos_embed)


def resample_pos_embed(
    pos_embed: Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]
) -> Tensor:
    """``(1, hs*ws, D)`` -> ``(1, hd*wd, D)``: bicubic resize on the patch grid (antialiased)."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed,
        new_size=list(dst_grid),
        old_size=list(src_grid),
        num_prefix_tokens=0,
        antialias=True,
    )


def _convert_vitpose_official(state: Mapping[str, Tensor], parts: PretrainedParts) -> None:
    for key, value in state.items():
        if key.startswith("keypoint_head."):
            parts.head[key[len("keypoint_head.") :]] = value
        elif key.startswith("associate_heads.") or key == "backbone.cls_token":
            parts.dropped.append(key)
        elif key == "backbone.pos_embed":
            parts.trunk["pos_embed"] = _pos_embed_for_timm(
                value, prefer_slot=True, source=parts.source, notes=parts.notes
            )
        elif key in ("backbone.patch_embed.proj.weight", "backbone.patch_embed.proj.bias"):
            parts.trunk[key[len("backbone.") :]] = value
        elif key in ("backbone.last_norm.weight", "backbone.last_norm.bias"):
            parts.trunk["norm." + key.rsplit(".", 1)[1]] = value
        elif _is_block_param(key, "backbone."):
            parts.trunk[key[len("backbone.") :]] = value
        else:
            _unknown_key(parts, key)


def _convert_vitpose_mmpose(state: Mapping[str, Tensor], parts: PretrainedParts) -> None:
    for key, value in state.items():
        if key.startswith("head."):
            parts.head[key[len("head.") :]] = value
        elif key == "backbone.cls_token":
            parts.dropped.append(key)
        elif key == "backbone.pos_embed":
            # mmpose writes 192 rows (no class slot); a 193-row file is folded like ViTPose's
            parts.trunk["pos_embed"] = _pos_embed_for_timm(
                value, prefer_slot=False, source=parts.source, notes=parts.notes
            )
        elif key in (
            "backbone.patch_embed.projection.weight",
            "backbone.patch_embed.projection.bias",
        ):
            parts.trunk["patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif key in ("backbone.ln1.weight", "backbone.ln1.bias"):
            parts.trunk["norm." + key.rsplit(".", 1)[1]] = value
        elif m := re.fullmatch(r"backbone\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            module = _MMPOSE_VIT_BLOCK.get(m.group(2))
            if module is None:
                _unknown_key(parts, key)
            else:
                parts.trunk[f"blocks.{m.group(1)}.{module}.{m.group(3)}"] = value
        else:
            _unknown_key(parts, key)


def _convert_mae(state: Mapping[str, Tensor], parts: PretrainedParts) -> None:
    for key, value in state.items():
        if key in ("cls_token", "mask_token") or key.startswith("decoder_"):
            parts.dropped.append(key)
        elif key == "pos_embed":
            parts.trunk["pos_embed"] = _pos_embed_for_timm(
                value, prefer_slot=True, source=parts.source, notes=parts.notes
            )
        elif key in (
            "patch_embed.proj.weight",
            "patch_embed.proj.bias",
            "norm.weight",
            "norm.bias",
        ):
            parts.trunk[key] = value
        elif _is_block_param(key, ""):
            parts.trunk[key] = value
        else:
            _unknown_key(parts, key)


def _convert_hrnet(
    state: Mapping[str, Tensor],
    parts: PretrainedParts,
    *,
    trunk_prefix: str,
    head_prefixes: Mapping[str, str],
) -> None:
    """``head_prefixes`` maps a head key prefix to its replacement in the head names."""
    for key, value in state.items():
        head_prefix = next((p for p in head_prefixes if key.startswith(p)), None)
        if head_prefix is not None:
            parts.head[head_prefixes[head_prefix] + key[len(head_prefix) :]] = value
        elif key.startswith(trunk_prefix) and _HRNET_TRUNK.match(key[len(trunk_prefix) :]):
            parts.trunk[key[len(trunk_prefix) :]] = value
        else:
            _unknown_key(parts, key)


def _convert_vidpose(state: Mapping[str, Tensor], parts: PretrainedParts) -> None:
    prefix = VIDPOSE_TRUNK_PREFIX[parts.family]
    for key, value in state.items():
        if key.startswith(prefix):
            parts.trunk[key[len(prefix) :]] = value
        elif key.startswith(VIDPOSE_HEAD_PREFIX):
            parts.head[key[len(VIDPOSE_HEAD_PREFIX) :]] = value
        else:
            _unknown_key(parts, key)


def _unknown_key(parts: PretrainedParts, key: str) -> None:
    raise CheckpointError(
        f"{parts.source}: key {key!r} is not part of the {parts.layout} layout "
        "(neither a backbone weight, a pose-head weight, nor a known extra); refusing to guess"
    )


_CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], PretrainedParts], None]] = {
    "vitpose_official": _convert_vitpose_official,
    "vitpose_mmpose": _convert_vitpose_mmpose,
    "mae": _convert_mae,
    "hrnet_official": lambda s, p: _convert_hrnet(
        s, p, trunk_prefix="", head_prefixes={"final_layer.": "final_layer."}
    ),
    "hrnet_mmpose": lambda s, p: _convert_hrnet(
        s, p, trunk_prefix="backbone.", head_prefixes={"keypoint_head.": "", "head.": ""}
    ),
    "vidpose_vit": _convert_vidpose,
    "vidpose_hrnet": _convert_vidpose,
}


def convert_state_dict(
    state: Mapping[str, Tensor], layout: str | None = None, *, source: str = "checkpoint"
) -> PretrainedParts:
    """Split an unwrapped state dict into trunk (timm names), head and dropped known extras."""
    layout = layout or detect_layout(state, source=source)
    if layout not in LAYOUTS:
        raise CheckpointError(f"{source}: unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    parts = PretrainedParts(source=source, layout=layout, trunk={})
    _CONVERTERS[layout](state, parts)
    if not parts.trunk:
        raise CheckpointError(f"{source}: the {layout} checkpoint holds no backbone weights")
    return parts


#: module of the single-frame (``deconv``) head whose children carry the classic pose-head names
SINGLE_FRAME_HEAD_PREFIX = "head.decoder."


def single_frame_model_parts(model_state: Mapping[str, Tensor], *, source: str) -> PretrainedParts | None:
    """A trained single-frame vidpose model's state dict as pretrained parts, or None if it is not one.

    A single-frame model is a vidpose backbone (``backbone.vit.*`` / ``backbone.hrnet.*``) with
    the ``deconv`` head (``head.decoder.{deconv_layers,final_layer}.*``, the classic pose-head
    names): exactly what an official ViTPose / pose-HRNet release holds, so any head loads from
    it as from the release (a temporal method started from a pretrained single-frame model). A
    backbone's own heatmap layer stands in for the head's ``final_layer`` when the head has none.
    """
    family = next((f for f, prefix in VIDPOSE_TRUNK_PREFIX.items() if any(k.startswith(prefix) for k in model_state)), None)
    head_keys = [k for k in model_state if k.startswith(VIDPOSE_HEAD_PREFIX)]
    if family is None or not head_keys or not all(k.startswith(SINGLE_FRAME_HEAD_PREFIX) for k in head_keys):
        return None
    trunk_prefix = VIDPOSE_TRUNK_PREFIX[family]
    parts = PretrainedParts(source=source, layout=f"vidpose_{family}", trunk={})
    for key, value in model_state.items():
        if key.startswith(trunk_prefix):
            parts.trunk[key[len(trunk_prefix):]] = value
        elif key.startswith(SINGLE_FRAME_HEAD_PREFIX):
            parts.head[key[len(SINGLE_FRAME_HEAD_PREFIX):]] = value
        elif key.startswith("backbone.heatmap_layer."):
            parts.dropped.append(key)
        else:
            _unknown_key(parts, key)
    return parts


def read_pretrained(path: str | Path, *, layout: str | None = None) -> PretrainedParts:
    """Read a checkpoint file and convert it (layout detected unless given)."""
    state = read_checkpoint(path)
    return convert_state_dict(state, layout, source=str(path))


def extract_head_state(state: Mapping[str, Tensor], layout: str | None = None) -> dict[str, Tensor]:
    """Pose-head weights of a state dict, unprefixed: ``deconv_layers.{0,1,3,4}.*``, ``final_layer.*``.

    HRNet files give ``final_layer.{weight,bias}`` ``(K, C0, 1, 1)`` / ``(K,)``; MAE files nothing.
    """
    return convert_state_dict(state, layout).head


# --------------------------------------------------------------------------------------------
# key reports and strict loading


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


@dataclass
class KeyReport:
    """What a pretrained load did, key by key; ``ok`` is False if anything must stop the load."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model key got a tensor of the right shape and nothing is left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """Multi-line human-readable account (counts, then the keys of every non-empty category)."""
        lines = [
            f"{self.source} ({self.layout}): loaded {len(self.loaded)}, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape-mismatched {len(self.mismatched)}, "
            f"dropped known extras {len(self.dropped)}, head entries {len(self.head)}"
        ]
        if self.missing:
            lines.append(f"  missing in the checkpoint: {_listing(self.missing)}")
        if self.unexpected:
            lines.append(f"  not in the model: {_listing(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} model {m} vs file {f}" for k, m, f in self.mismatched]
            lines.append(f"  shape mismatches: {_listing(shown)}")
        if self.dropped:
            lines.append(f"  dropped known extras: {_listing(self.dropped)}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise :class:`CheckpointError` with the summary (and a hint) unless ``ok``."""
        if self.ok:
            return
        hint = ""
        if self.missing and all(
            re.match(r"stage4\.\d+\.fuse_layers\.[1-9]", k) for k in self.missing
        ):
            hint = (
                "\n  hint: the model's last stage-4 module builds every branch output (an untrimmed "
                "timm HRNet) while pose HRNet keeps only output 0; trim it with "
                "model.stage4[-1].fuse_layers = model.stage4[-1].fuse_layers[:1]"
            )
        raise CheckpointError(
            "pretrained weights do not fit the backbone:\n" + self.summary() + hint
        )


def compare_keys(
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    provided: Mapping[str, Tensor],
    *,
    source: str,
    layout: str,
) -> KeyReport:
    """Compare a model's key shapes with provided tensors; nothing is loaded."""
    report = KeyReport(source=source, layout=layout)
    for key, shape in expected.items():
        if key not in provided:
            report.missing.append(key)
        elif tuple(provided[key].shape) != tuple(shape):
            report.mismatched.append((key, tuple(shape), tuple(provided[key].shape)))
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in provided if k not in expected]
    return report


def load_trunk_state(
    module: nn.Module, parts: PretrainedParts, trunk: Mapping[str, Tensor] | None = None
) -> KeyReport:
    """Strictly load ``trunk`` (default ``parts.trunk``) into ``module``; raise listing any bad key."""
    trunk = parts.trunk if trunk is None else trunk
    expected = {k: v.shape for k, v in module.state_dict().items()}
    report = compare_keys(expected, trunk, source=parts.source, layout=parts.layout)
    report.dropped = list(parts.dropped)
    report.head = sorted(parts.head)
    report.notes = list(parts.notes)
    report.raise_for_errors()
    module.load_state_dict(dict(trunk), strict=True)
    return report


def log_report(report: KeyReport) -> None:
    """Log the summary at INFO (the dropped extras are named there)."""
    logger.info("%s", report.summary())
