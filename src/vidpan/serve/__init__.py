"""``vidpan serve``: a local web page to try a model on a video (optional extra ``vidpan[serve]``).

- :mod:`.uploads`: checking uploads (video, ground-truth zip) and the sample video;
- :mod:`.pipeline`: segment + per-track table + timeline + scores + zip, plain functions;
- :mod:`.app`: the Gradio page over them (``build_app``, ``launch``).
"""
