"""Frame compositor, idle-loop walker, gesture clip player and overlays."""
