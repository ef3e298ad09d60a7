"""gateway — filled in by later issues (see design/ARCHITECTURE.md)."""
