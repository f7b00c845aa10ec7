"""Tracking conventions: one W&B run (or CSV log) per trial, secrets kept out, offline runs read back."""
