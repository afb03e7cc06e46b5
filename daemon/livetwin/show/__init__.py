"""The show: catalog, scripts, director, viewer-count strategy."""
