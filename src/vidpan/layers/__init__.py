"""Building blocks shared by two or more models (MLP, attention layers, position encodings)."""
