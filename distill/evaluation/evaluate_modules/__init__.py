"""`evaluate` metric modules shipped with distill, loaded from their local directories.

Each folder holds one script named like the folder, the layout `evaluate.load(path)` expects.
The scripts delegate to distill.evaluation.metrics so the CLI and `evaluate` agree exactly.
"""
