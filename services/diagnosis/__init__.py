"""The diagnosis service: which artifacts a reconstruction shows."""
