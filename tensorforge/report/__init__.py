"""HTML profile reports of engines (`tensorforge report`): layer table, plots, timeline, build summary."""
