"""Stage runner, media clock and task ownership for the live daemon."""
