"""Decoding media: audio (and later video) files into arrays, and the speech check."""
