"""Two training processes on CPU (torchrun, gloo; Accelerate picks them up) end where one ends.

Same global batch: 2 processes x batch 4 against 1 process x batch 4 x 2 accumulation steps
(the same batches, in the same order, averaged the same way), with a dropout-free tiny T5, so
the only differences left are float summation order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_t5_dir

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "ddp_train_script.py"
ROWS = [
    {"input": "20.08.2010", "output": "08/20/2010"},
    {"input": "new york ny", "output": "New York, NY"},
    {"input": "call f on 3", "output": "x = f(3);"},
    {"input": "mail of a b", "output": "e-mail: A.B@c.org"},
]


def _run(cmd: list[str]) -> None:
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "rank1]" in line]
    assert proc.returncode == 0, "\n".join(errors[:40]) + proc.stderr[-2000:]


@pytest.mark.slow
def test_two_cpu_processes_match_one_at_the_same_global_batch(tmp_path: Path) -> None:
    student = tiny_t5_dir(tmp_path / "student")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 8))  # 32 rows: 8 batches of 4
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    _run([*launch, str(SCRIPT), str(student), str(data), str(two), "4", "1"])
    _run([sys.executable, str(SCRIPT), str(student), str(data), str(one), "4", "2"])
    rank0, rank1 = (torch.load(two / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(one / "rank0.pt")
    assert int(rank0.pop("__world__")) == int(rank1.pop("__world__")) == 2
    assert int(single.pop("__world__")) == 1
    assert rank0.keys() == rank1.keys() == single.keys()
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name  # DDP ranks hold identical weights
        torch.testing.assert_close(value, single[name], rtol=1e-3, atol=1e-4, msg=name)
    initial = tiny_t5_dir(tmp_path / "again")  # same seed: the starting weights
    from safetensors.torch import load_file

    start = load_file(initial / "model.safetensors")
    assert any(not torch.equal(start[k], rank0[k]) for k in start if k in rank0)  # it trained
    assert (two / "model" / "model.safetensors").is_file()
    assert not (two / "model" / "checkpoints").exists()  # removed after every rank loaded best
