"""Run by tests/test_students_ddp.py under torchrun (or alone): train a tiny T5 and
write each rank's final weights to OUT/rank{R}.pt.

    python tests/ddp_train_script.py STUDENT DATA OUT BATCH GRAD_ACCUM
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from students import train as train_mod
from students.config import TrainConfig


def main(student: str, data: str, out: str, batch: str, accum: str) -> None:
    original = train_mod._Run.finish

    def finish(self, task_name: str, card: dict) -> dict:
        metrics = original(self, task_name, card)
        state = {k: v.detach().cpu().clone() for k, v in self.final_model.state_dict().items()}
        state["__world__"] = torch.tensor(self.acc.num_processes)
        torch.save(state, Path(out) / f"rank{self.acc.process_index}.pt")
        return metrics

    train_mod._Run.finish = finish
    cfg = TrainConfig(
        student=student,
        epochs=2,
        lr=1e-2,
        batch_size=int(batch),
        grad_accum=int(accum),
        warmup_ratio=0.0,
        patience=0,
        threads=1,
        group_by_length=False,
    )
    model_dir = Path(out) / "model"
    train_mod.train_student(
        cfg, Path(data), Path(data), model_dir, instruction="Do it.", task_name="t"
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
