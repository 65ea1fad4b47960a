"""Run a trained model on your own frames: ``VideoPoseEstimator.from_checkpoint(path)(frames, boxes)``.

See the README's "Run a model on your own video" and :mod:`vidpose.inference.estimator`.
"""

from vidpose.inference.estimator import VideoPoseEstimator
from vidpose.inference.results import PersonPose, VideoPoses

__all__ = ["VideoPoseEstimator", "PersonPose", "VideoPoses"]
