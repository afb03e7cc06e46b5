"""Gestures: the library loader and validator (library.py), word timings estimated from
text (timing.py), the speech-to-gesture planner (planner.py), what an avatar can render
(avatar.py), the recording guide (guide.py), marks from a recorded take (marks.py) and
the planning benchmark (benchmark.py). docs/gestures.md explains the whole."""
