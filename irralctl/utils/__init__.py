"""Small helpers shared by every stage: atomic files, JSON lines, configs, provenance."""
