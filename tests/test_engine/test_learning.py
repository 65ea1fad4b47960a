"""The single-frame baseline learns on the synthetic set within the CI budget (issue: learning test)."""

from __future__ import annotations

import pytest

from vidpose.engine import train


@pytest.mark.slow
def test_baseline_synthetic_beats_the_untrained_model(compose_exp):
    # the full main-job experiment, as the README runs it (about 4-5 minutes on 2 CPU cores)
    metrics = train(compose_exp("baseline_synthetic", "trainer.validate_at_start=true", "trainer.num_workers=2"))
    untrained, trained = metrics["initial/mAP"], metrics["mAP"]
    assert trained >= 40.0, f"baseline_synthetic reached only {trained:.2f} mAP"
    assert trained >= 3 * untrained, f"trained {trained:.2f} vs untrained {untrained:.2f}"
