"""Records, sources, formatting and splits."""
