"""Live chat: connectors, the safety gate, the answer database and flow control
(docs/chat.md). `registry.open_chat` builds what `livetwin serve` runs."""
