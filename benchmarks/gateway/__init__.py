"""The gateway benchmark: scoregate vs nginx vs the backend directly (issue 2 §7)."""
