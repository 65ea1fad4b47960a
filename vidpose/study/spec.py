"""A study definition (``configs/study/<name>.yaml``) read into plain dataclasses.

A study has three stages, each a set of runs of ``tools/train.py``:

1. ``pretrain``: one single-frame model per backbone family (the papers' COCO ViTPose / HRNet
   in miniature), trained once;
2. ``rows``: every method started from the pretrained model of its family through ``init_from``
   and trained with the study's common budget, once per seed. A row is one line: the
   experiment, the pretrained model, optional overrides, and the row it is compared with;
3. ``refine``: refiners (HANet) trained on the stage-1 sequences of a pretrained model (exported
   with ``tools/eval.py save_sequences=...``), once per seed.

``quick`` holds overrides of the study itself (a smaller preset, fewer steps and seeds) for the
smoke run that CI executes; it checks the machinery, not the claims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

__all__ = ["PretrainSpec", "RowSpec", "StudySpec", "load_study", "STUDY_DIR"]

#: where the study definitions live
STUDY_DIR = Path(__file__).resolve().parents[2] / "configs" / "study"

_ROW_KINDS = ("reference", "method", "ablation", "refiner")


@dataclass(frozen=True)
class PretrainSpec:
    """A stage-1 single-frame model: the experiment, its data config and overrides."""

    name: str
    exp: str
    data: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowSpec:
    """A leaderboard row: a method (or reference/ablation/refiner) started from a pretrained model."""

    name: str
    exp: str
    pretrained: str
    kind: str
    compare_to: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """Everything the runner needs to plan a study; see the module docstring."""

    name: str
    seeds: tuple[int, ...]
    common: tuple[str, ...]
    pretrain: dict[str, PretrainSpec]
    pretrain_overrides: tuple[str, ...]
    rows: dict[str, RowSpec]
    row_overrides: tuple[str, ...]
    refine: dict[str, RowSpec]
    refine_overrides: tuple[str, ...]
    sequence_splits: tuple[str, ...] = ("train", "test")
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def reference_of(self, row: str) -> str | None:
        """The row a method's claims compare against (its family's continued baseline)."""
        return self.rows[row].compare_to if row in self.rows else self.refine[row].compare_to


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list of key=value overrides, got {value!r}")
    out = tuple(str(v) for v in value)
    bad = [v for v in out if "=" not in v]
    if bad:
        raise ValueError(f"{where}: overrides must be key=value, got {bad}")
    return out


def _require(node: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in node or node[key] in (None, ""):
        raise ValueError(f"{where}: missing '{key}'")
    return node[key]


def _row(name: str, node: Mapping[str, Any], kind_default: str, where: str) -> RowSpec:
    unknown = sorted(set(node) - {"exp", "pretrained", "kind", "compare_to", "overrides"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (allowed: exp, pretrained, kind, compare_to, overrides)")
    kind = str(node.get("kind", kind_default))
    if kind not in _ROW_KINDS:
        raise ValueError(f"{where}.kind: expected one of {_ROW_KINDS}, got {kind!r}")
    return RowSpec(
        name=name,
        exp=str(_require(node, "exp", where)),
        pretrained=str(_require(node, "pretrained", where)),
        kind=kind,
        compare_to=None if node.get("compare_to") is None else str(node["compare_to"]),
        overrides=_strings(node.get("overrides"), f"{where}.overrides"),
    )


def _check_links(spec: StudySpec) -> None:
    for table, rows in (("rows", spec.rows), ("refine", spec.refine)):
        for row in rows.values():
            where = f"study {spec.name}: {table}.{row.name}"
            if row.pretrained not in spec.pretrain:
                raise ValueError(f"{where}.pretrained: {row.pretrained!r} is not a pretrain entry ({sorted(spec.pretrain)})")
            if row.compare_to is not None and row.compare_to not in rows:
                raise ValueError(f"{where}.compare_to: {row.compare_to!r} is not a row of {table} ({sorted(rows)})")
            if row.kind in ("method", "ablation") and row.compare_to is None:
                raise ValueError(f"{where}: a {row.kind} row needs compare_to (the row it is measured against)")


def load_study(name_or_path: str | Path, quick: bool = False, overrides: Sequence[str] = ()) -> StudySpec:
    """Read ``configs/study/<name>.yaml`` (or a path); ``quick`` merges its ``quick`` section first."""
    path = Path(name_or_path)
    if not path.suffix:
        path = STUDY_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"study {name_or_path!r}: {path} does not exist (known studies: {known})")
    node = OmegaConf.load(path)
    quick_node = node.pop("quick", None)
    if quick:
        if quick_node is None:
            raise ValueError(f"{path}: --quick needs a 'quick' section")
        node = OmegaConf.merge(node, quick_node)
    if overrides:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(list(overrides)))
    raw = OmegaConf.to_container(node, resolve=True)
    where = f"{path}"
    known_keys = {"name", "seeds", "common", "pretrain", "rows", "refine", "sequence_splits", "extra"}
    unknown = sorted(set(raw) - known_keys)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (allowed: {sorted(known_keys)} and quick)")
    pretrain_node = dict(_require(raw, "pretrain", where))
    pretrain_overrides = _strings(pretrain_node.pop("overrides", None), f"{where}: pretrain.overrides")
    pretrain = {}
    for name, entry in pretrain_node.items():
        entry_where = f"{where}: pretrain.{name}"
        pretrain[name] = PretrainSpec(
            name=name,
            exp=str(_require(entry, "exp", entry_where)),
            data=str(_require(entry, "data", entry_where)),
            overrides=_strings(entry.get("overrides"), f"{entry_where}.overrides"),
        )
    rows_node = dict(_require(raw, "rows", where))
    row_overrides = _strings(rows_node.pop("overrides", None), f"{where}: rows.overrides")
    rows = {name: _row(name, entry, "method", f"{where}: rows.{name}") for name, entry in rows_node.items()}
    refine_node = dict(raw.get("refine") or {})
    refine_overrides = _strings(refine_node.pop("overrides", None), f"{where}: refine.overrides")
    refine = {name: _row(name, entry, "refiner", f"{where}: refine.{name}") for name, entry in refine_node.items()}
    seeds = tuple(int(s) for s in _require(raw, "seeds", where))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}: seeds must be a non-empty list of distinct integers, got {list(seeds)}")
    spec = StudySpec(
        name=str(raw.get("name", path.stem)),
        seeds=seeds,
        common=_strings(raw.get("common"), f"{where}: common"),
        pretrain=pretrain,
        pretrain_overrides=pretrain_overrides,
        rows=rows,
        row_overrides=row_overrides,
        refine=refine,
        refine_overrides=refine_overrides,
        sequence_splits=tuple(str(s) for s in raw.get("sequence_splits", ("train", "test"))),
        source=str(path),
        extra=dict(raw.get("extra") or {}),
    )
    _check_links(spec)
    return spec
