"""livetwin: a real-time, lip-synced twin of a livestreamer, cloned from one minute of video."""

__version__ = "0.1.0"
