"""Charts and reports rendered from results (PNG bytes, self-contained HTML strings; no file I/O)."""
