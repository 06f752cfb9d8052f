"""Small utilities (atomic output writing)."""
