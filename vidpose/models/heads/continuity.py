"""CDPose: continuity-driven pose estimation (``specs/models.md`` section 4).

Every frame of a 5-frame window goes through the (trained) backbone. Per frame ``i``::

    Z_i = E_Z(F_i)                       (B, T, M)  unit-norm semantic embedding
    θ_i = E_S(F_i)                       (B, T, 2, 3) affine, identity at initialisation
    H_i = A(D(Z_i), θ_i)                 (B, T, K, h, w)
    H*_t = Fusion(H_1 .. H_T)            (B, K, h, w)   the key frame's output

Losses (section 4.3): ``L_h1`` (MSE of every frame's ``H_i``, summed over frames as the paper's
``Σ_i``; unannotated frames weigh 0), ``L_h2`` (MSE of ``H*_t``), the temporal triplet loss
``L_c`` on ``Z``, the spatial consistency ``L_s`` between the key frame's ``Z`` and that of a
rotated/scaled second view, and TPDI ``L_t``. The second view is rendered by the data
pipeline (``data.second_view``) and arrives as ``batch["view2"]``; ``PoseModel`` runs it
through the backbone (``extra_views``) and passes its features as
``batch["extra_features"]["view2"]``.

Ablation switches (Tables 5-6): ``semantic_space=false`` (per-frame heatmaps from the ViTPose
deconvolution head instead of ``E_Z``/``E_S``/``D``/``A``; needs the ``L_c``/``L_s`` weights at
0), ``transform=false`` (no ``E_S``: ``H_i = D(Z_i)``), ``fusion=false`` (``H*_t = H_t``, no
``L_h2``), and the loss weights (0 switches a term off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from vidpose.heatmaps.geometry import Geometry
from vidpose.losses.continuity import (
    CONTRASTIVE_FORMS,
    spatial_consistency_loss,
    temporal_triplet_loss,
    tpdi_loss,
)
from vidpose.losses.heatmap import heatmap_mse
from vidpose.models.heads.base import Head
from vidpose.models.heads.continuity_blocks import (
    EmbeddingDecoder,
    MultiFrameHeatmapFusion,
    SemanticAlignmentEncoder,
    TransformationEncoder,
    affine_warp,
)
from vidpose.models.heads.deconv import DeconvDecoder, num_upsampling_layers
from vidpose.registry import HEADS

__all__ = ["ContinuityHead", "SECOND_VIEW_KEY"]

SECOND_VIEW_KEY = "view2"


@HEADS.register("continuity")
class ContinuityHead(Head):
    """CDPose head: semantic alignment space (``E_Z``, ``E_S``, ``D``, ``A``), TPDI and multi-frame heatmap fusion."""

    frames = "all"
    targets = ("heatmap", "weight", "heatmap_all", "weight_all")
    supported_num_frames = (3, 5)

    @classmethod
    def small_config(cls) -> dict:
        """A narrow instance for CPU tests."""
        return {
            "embed_dim": 16,
            "encoder_width": 16,
            "encoder_heads": 2,
            "encoder_token_hidden": 8,
            "transform_channels": 8,
            "transform_pool": [2, 2],
            "transform_hidden": 8,
            "decoder_coarse_channels": 8,
            "decoder_channels": 8,
            "fusion_dim": 8,
            "fusion_depth": 1,
            "fusion_heads": 2,
            "top_k": 4,
        }

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        num_frames: int,
        key_index: int,
        input_hw: Sequence[int],
        heatmap_hw: Sequence[int],
        geometry: Geometry | None = None,
        semantic_space: bool = True,
        transform: bool = True,
        fusion: bool = True,
        embed_dim: int = 128,
        encoder_width: int = 64,
        encoder_heads: int = 4,
        encoder_token_hidden: int = 64,
        token_stride: int = 16,
        transform_channels: int = 32,
        transform_pool: Sequence[int] = (8, 6),
        transform_hidden: int = 64,
        decoder_coarse_channels: int = 24,
        decoder_channels: int = 32,
        deconv_channels: int = 256,
        fusion_patch: int = 2,
        fusion_dim: int = 32,
        fusion_depth: int = 2,
        fusion_heads: int = 4,
        mlp_ratio: float = 4.0,
        frames_heatmap_weight: float = 1.0,
        fused_heatmap_weight: float = 1.0,
        contrastive_weight: float = 0.01,
        spatial_weight: float = 0.01,
        tpdi_weight: float = 0.01,
        contrastive_margin: float = 0.2,
        contrastive_form: str = "corrected",
        top_k: int = 25,
        patch: int = 5,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__(freeze_backbone=freeze_backbone)
        if num_frames not in self.supported_num_frames or key_index != num_frames // 2:
            raise ValueError(
                f"continuity: needs a symmetric window of {self.supported_num_frames} frames with the key frame in "
                f"the middle (data.clip.offsets like [-2, -1, 0, 1, 2]); got {num_frames} frames, key index {key_index}"
            )
        if contrastive_form not in CONTRASTIVE_FORMS:
            raise ValueError(f"continuity: contrastive_form must be one of {CONTRASTIVE_FORMS}, got {contrastive_form!r}")
        weights = {
            "frames_heatmap_weight": frames_heatmap_weight,
            "fused_heatmap_weight": fused_heatmap_weight,
            "contrastive_weight": contrastive_weight,
            "spatial_weight": spatial_weight,
            "tpdi_weight": tpdi_weight,
        }
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise ValueError(f"continuity: loss weights must be >= 0, got {negative}")
        if not semantic_space and (contrastive_weight > 0 or spatial_weight > 0):
            raise ValueError(
                "continuity: semantic_space=false has no embeddings Z; set head.contrastive_weight=0 and "
                "head.spatial_weight=0 (and data.second_view.enabled=false)"
            )
        if not fusion and fused_heatmap_weight > 0:
            raise ValueError("continuity: fusion=false has no fused heatmap; set head.fused_heatmap_weight=0")
        if not semantic_space and not transform:
            raise ValueError("continuity: transform=false only applies with semantic_space=true")
        input_h, input_w = (int(v) for v in input_hw)
        heatmap_h, heatmap_w = (int(v) for v in heatmap_hw)
        if geometry is None:
            geometry = Geometry((input_h, input_w), heatmap_stride, "msra")
        elif geometry.input_hw != (input_h, input_w) or geometry.heatmap_hw != (heatmap_h, heatmap_w):
            raise ValueError(f"continuity: geometry {geometry} disagrees with input {input_hw} / heatmap {heatmap_hw}")
        self.heatmap_to_input = tuple(1.0 / s for s in geometry.input_to_heatmap_scale())
        self.key_index = key_index
        self.semantic_space, self.transform, self.fusion = bool(semantic_space), bool(transform), bool(fusion)
        self.weights = {k: float(v) for k, v in weights.items()}
        self.contrastive_margin = float(contrastive_margin)
        self.contrastive_form = contrastive_form
        self.top_k, self.patch = int(top_k), int(patch)
        self.extra_views = (SECOND_VIEW_KEY,) if spatial_weight > 0 else ()

        if self.semantic_space:
            feature_hw = (-(-input_h // in_stride), -(-input_w // in_stride))
            self.semantic_encoder = SemanticAlignmentEncoder(
                in_channels, in_stride, feature_hw, embed_dim, encoder_width, encoder_heads, mlp_ratio,
                encoder_token_hidden, token_stride,
            )
            if self.transform:
                self.transformation_encoder = TransformationEncoder(
                    in_channels, transform_channels, transform_pool, transform_hidden
                )
            self.decoder = EmbeddingDecoder(
                embed_dim, num_joints, (heatmap_h, heatmap_w), decoder_coarse_channels, decoder_channels
            )
        else:
            self.frame_decoder = DeconvDecoder(
                in_channels, num_joints, num_upsampling_layers(in_stride, heatmap_stride), deconv_channels
            )
        if self.fusion:
            self.heatmap_fusion = MultiFrameHeatmapFusion(
                num_joints, num_frames, key_index, (heatmap_h, heatmap_w), fusion_patch, fusion_dim, fusion_depth,
                fusion_heads, mlp_ratio,
            )

    def forward(
        self,
        features: Tensor,
        batch: Mapping[str, Tensor] | None = None,
        flows: Tensor | None = None,
        initial_heatmaps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Features ``(B, T, C, h, w)`` -> ``heatmaps (B, K, h', w')`` (``H*_t``) and the auxiliaries.

        Outputs: ``heatmaps_all (B, T, K, h', w')`` (``H_i``); with the semantic space
        ``embeddings (B, T, M)``, ``theta (B, T, 2, 3)`` (with ``transform``) and, when the
        batch carries the second view's features, ``view_embeddings (B, M)``; in training
        mode with TPDI on, ``frames (B, T, 3, H, W)`` (the images TPDI compares).
        """
        if features.dim() != 5:
            raise ValueError(f"continuity: expected all-frame features (B, T, C, h, w), got {tuple(features.shape)}")
        b, t = features.shape[:2]
        flat = features.flatten(0, 1)
        outputs: dict[str, Tensor] = {}
        if self.semantic_space:
            embeddings = self.semantic_encoder(flat)
            canonical = self.decoder(embeddings)
            if self.transform:
                theta = self.transformation_encoder(flat)
                per_frame = affine_warp(canonical, theta)
                outputs["theta"] = theta.view(b, t, 2, 3)
            else:
                per_frame = canonical
            outputs["embeddings"] = embeddings.view(b, t, -1)
            view_features = self._view_features(batch)
            if view_features is not None:
                outputs["view_embeddings"] = self.semantic_encoder(view_features)
        else:
            per_frame = self.frame_decoder(flat)
        heatmaps_all = per_frame.unflatten(0, (b, t))
        outputs["heatmaps_all"] = heatmaps_all
        outputs["heatmaps"] = self.heatmap_fusion(heatmaps_all) if self.fusion else heatmaps_all[:, self.key_index]
        if self.training and self.weights["tpdi_weight"] > 0:
            if batch is None or "frames" not in batch:
                raise ValueError("continuity: TPDI needs batch['frames'] (B, T, 3, H, W) in [0, 1] during training")
            outputs["frames"] = batch["frames"]
        return outputs

    def _view_features(self, batch: Mapping[str, Tensor] | None) -> Tensor | None:
        """The second view's backbone features ``(B, C, h, w)``; required in training when ``L_s`` is on."""
        extra = (batch or {}).get("extra_features", {})
        if SECOND_VIEW_KEY in extra:
            return extra[SECOND_VIEW_KEY]
        if self.training and self.weights["spatial_weight"] > 0:
            raise ValueError(
                f"continuity: training with head.spatial_weight > 0 needs the second view batch[{SECOND_VIEW_KEY!r}]; "
                "set data.second_view.enabled=true (or head.spatial_weight=0)"
            )
        return None

    def load_pretrained_head(self, state: Mapping[str, Tensor]) -> list[str]:
        """Official ViTPose ``keypoint_head`` weights into the per-frame deconvolution head (``semantic_space=false``).

        With the semantic space there is no single-frame head to load: ``E_Z``, ``E_S``, ``D``
        and the fusion start from their initialisation.
        """
        if self.semantic_space:
            raise NotImplementedError("continuity: the semantic-space decoder has no pretrained counterpart")
        return self.frame_decoder.load_official(state)

    def loss(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every term separately (detached) plus ``"loss"`` = the weighted sum of the switched-on terms."""
        w = self.weights
        terms: dict[str, Tensor] = {}
        if w["frames_heatmap_weight"] > 0:
            # Σ_i over frames of the per-frame mean-reduced MSE (the paper's L_h1 = Σ_i ||G_i - H_i||²).
            num_frames = outputs["heatmaps_all"].shape[1]
            terms["frames_heatmap"] = num_frames * heatmap_mse(
                outputs["heatmaps_all"], targets["heatmap_all"], targets["weight_all"]
            )
        if w["fused_heatmap_weight"] > 0:
            terms["fused_heatmap"] = heatmap_mse(outputs["heatmaps"], targets["heatmap"], targets["weight"])
        if w["contrastive_weight"] > 0:
            terms["contrastive"] = temporal_triplet_loss(
                outputs["embeddings"], self.key_index, self.contrastive_margin, self.contrastive_form
            )
        if w["spatial_weight"] > 0:
            terms["spatial"] = spatial_consistency_loss(
                outputs["embeddings"][:, self.key_index], outputs["view_embeddings"]
            )
        if w["tpdi_weight"] > 0:
            terms["tpdi"] = tpdi_loss(
                outputs["heatmaps_all"], outputs["frames"], targets["weight_all"], self.heatmap_to_input,
                self.top_k, self.patch,
            )
        if not terms:
            raise ValueError("continuity: every loss weight is 0")
        total = sum(w[f"{name}_weight"] * value for name, value in terms.items())
        return {"loss": total, **{name: value.detach() for name, value in terms.items()}}
