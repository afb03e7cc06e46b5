"""LLM backends that draft sales scripts. One file per backend behind the one-method
`LLMBackend` interface, chosen by name from config in `registry.from_config`; "none"
means templates only (the default)."""
