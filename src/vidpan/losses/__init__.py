"""Training losses: Hungarian matchers and the Mask2Former / DVIS set criterion.

- ``matcher``: :class:`~vidpan.losses.matcher.HungarianMatcher` (per image, per-clip consistent, video level).
- ``criterion``: :class:`~vidpan.losses.criterion.SetCriterion` (segmenter / tracker / refiner losses).
- ``prediction``: :class:`~vidpan.losses.prediction.VideoMaskPrediction`, the batch-first input.
- ``schedule``: DVIS++'s first-half matching on the frozen earlier stage.
"""
