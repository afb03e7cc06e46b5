"""The HTTP + WebSocket API of `livetwin serve` (ARCHITECTURE §7, docs/live.md)."""
