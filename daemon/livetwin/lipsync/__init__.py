"""Mouth-shape tracks: from phonemes, from audio (the person model), and baselines."""
