"""Everything that talks to an LLM over the OpenAI chat-completions API.

Leaf package: imports nothing of distill, students or exports.
"""
