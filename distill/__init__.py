"""distill: turn an LLM teacher and a task description into a small deployable student."""

__version__ = "0.1.0"
