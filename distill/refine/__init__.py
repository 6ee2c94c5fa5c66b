"""Active refinement rounds (`distill refine`, `distill run --rounds R`), after LLM2LLM
(Lee et al. 2024): the teacher is asked where the student fails.

One round: take the next unused inputs of a pool, have the teacher label them (with exactly
the request generate's label mode sends, so what generate already asked replays from the
teacher cache), let the student predict them, keep the disagreements, ask the teacher for new
examples like each group of disagreements, retrain the student from its current weights on the
old training set plus the new examples, and keep the new model only when the validation score
rose. Modules:

    config.py  RefineConfig: the flags and the [refine] table
    pool.py    which inputs a round takes, and the dedup/leak checks new examples pass
    asks.py    the teacher's part of a round: journaled label and write-similar requests
    rounds.py  one round on disk (round-<r>/), the stop rule, and the loop
"""
