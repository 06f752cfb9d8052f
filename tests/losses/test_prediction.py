"""VideoMaskPrediction: unfolding the segmenter's frame-folded output, video-level class logits."""

from __future__ import annotations

import pytest
import torch

from vidpan.losses.prediction import VideoMaskPrediction, video_class_logits
from vidpan.structures import MaskPrediction, SegmenterOutput

K = 6


def test_from_frames_unfolds_segmenter_output_and_class_reduction() -> None:
    n, q, h, w, c = 6, 4, 3, 5, 8
    aux = (MaskPrediction(torch.randn(n, q, K + 1), torch.randn(n, q, h, w)),)
    seg = SegmenterOutput(
        class_logits=torch.randn(n, q, K + 1),
        mask_logits=torch.randn(n, q, h, w),
        embeds=torch.randn(n, q, c),
        embeds_unnormed=torch.randn(n, q, c),
        mask_features=torch.randn(n, 2, h, w),
        aux=aux,
    )
    video = VideoMaskPrediction.from_frames(seg, batch_size=2)
    assert video.class_logits.shape == (2, 3, q, K + 1) and video.mask_logits.shape == (2, 3, q, h, w)
    torch.testing.assert_close(video.mask_logits[1, 2], seg.mask_logits[5])  # b-major folding
    torch.testing.assert_close(video.aux[0].class_logits[1, 0], aux[0].class_logits[3])
    with pytest.raises(ValueError, match="cannot be split"):
        VideoMaskPrediction.from_frames(seg, batch_size=4)
    torch.testing.assert_close(video_class_logits(video.class_logits, "first"), video.class_logits[:, 0])
    torch.testing.assert_close(video_class_logits(video.class_logits, "mean"), video.class_logits.mean(1))
    with pytest.raises(ValueError, match="reduce"):
        video_class_logits(video.class_logits, "max")  # type: ignore[arg-type]
