"""Small seq2seq students: presets, formatting, tokenisation, fine-tuning, torch inference.

Leaf package: imports nothing of distill, teachers or exports. Keep this file free of torch
imports so configs can be read without loading torch.
"""
