"""Self-contained HTML reports (inline CSS and SVG, no external resources): hospital data-quality feedback."""
