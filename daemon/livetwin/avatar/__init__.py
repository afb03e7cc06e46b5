"""Cloning a person into an avatar bundle, and loading/verifying bundles."""
