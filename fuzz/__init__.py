"""Coverage-guided fuzzing of NetVigil's parsers (``make fuzz``; docs/fuzzing.md)."""
