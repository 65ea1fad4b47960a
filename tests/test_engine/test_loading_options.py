"""Config plumbing of the speed options: frame decoding/caching (data.*) and the evaluation flow cache."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from vidpose.engine import builders
from vidpose.engine.distributed import init_distributed
from vidpose.engine.evaluate_run import build_evaluator
from vidpose.engine.evaluator import Evaluator

TINY = ("data.dataset.preset=tiny", "trainer.val_max_instances=6", "trainer.val_batch_size=4")


def test_frame_reader_options_default_off_and_follow_the_config(compose_exp):
    cfg = compose_exp("baseline_synthetic", *TINY)
    index = builders.build_index(cfg, "val")
    reader = builders.build_frame_reader(cfg, index)
    assert not reader.reduced_decoding and not reader.caching
    cfg = compose_exp("baseline_synthetic", *TINY, "data.reduced_decoding=true", "data.frame_cache_mb=64")
    reader = builders.build_frame_reader(cfg, index)
    assert reader.reduced_decoding and reader.cache_bytes == 64 * 2**20 and reader.image_root == index.image_root
    dataset = builders.build_dataset(cfg, index, index.gt_instances(min_visible=0)[:2], builders.build_geometry(cfg),
                                     builders.build_layout(cfg), train=False)
    assert dataset.frame_reader.reduced_decoding and dataset.frame_reader.cache_bytes == 64 * 2**20
    # a config stored before the options existed (an old checkpoint's) reads frames as before
    with open_dict(cfg):
        del cfg.data["reduced_decoding"], cfg.data["frame_cache_mb"], cfg.evaluation["flow_cache_mb"]
    assert not builders.build_frame_reader(cfg, index).caching and builders.flow_cache_mb(cfg) == 0


def _keypoints(predictions):
    return np.stack([p.keypoints for p in predictions])


def test_evaluation_flow_cache_reproduces_uncached_predictions(compose_exp, tmp_path):
    info = init_distributed("cpu")
    plain_cfg = compose_exp("mtpose_synthetic", *TINY)
    cached_cfg = compose_exp("mtpose_synthetic", *TINY, "evaluation.flow_cache_mb=16")
    plain = build_evaluator(plain_cfg, info, tmp_path / "plain")
    cached = build_evaluator(cached_cfg, info, tmp_path / "cached")
    assert plain.flow_cache is None and cached.flow_cache is not None
    model = builders.build_model(plain_cfg, plain.layout, plain.geometry)
    expected = _keypoints(plain.predict(model))
    first = _keypoints(cached.predict(model))
    pairs = len(cached.instances) * 2 * 2  # two flow pairs, plain and flip-test passes
    assert cached.flow_cache.misses == pairs and cached.flow_cache.hits == 0
    second = _keypoints(cached.predict(model))
    assert cached.flow_cache.hits == pairs and len(cached.flow_cache) == pairs
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
    assert model.flow_cache is None  # only attached while the evaluator predicts


def test_flow_cache_refuses_an_augmented_dataset(compose_exp, tmp_path):
    cfg = compose_exp("mtpose_synthetic", "data.dataset.preset=tiny")
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    index = builders.build_index(cfg, "val")
    instances = builders.build_instances(cfg, index, False)  # every GT box: a complete validation set
    augmented = builders.build_dataset(cfg, index, instances, geometry, layout, train=True)
    with pytest.raises(ValueError, match="without augmentation"):
        Evaluator(index, instances, augmented, geometry, layout, "posetrack", tmp_path, init_distributed("cpu"),
                  flow_cache_mb=8)
    assert OmegaConf.select(cfg, "evaluation.flow_cache_mb") == 0  # off unless asked for
