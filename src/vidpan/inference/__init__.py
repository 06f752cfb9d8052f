"""Video inference: the streaming predictor, post-processing, video I/O and visualisation."""
