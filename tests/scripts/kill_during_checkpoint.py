"""Train a tiny OE model with checkpoints every 2 steps (save_total_limit=1); hang while writing the 2nd outlier state.

Used by tests/test_trainer_faults.py, which kills this process (SIGKILL) once `ready` exists, then resumes.
Usage: python kill_during_checkpoint.py OUTPUT_DIR READY_FILE
"""

import sys
import time
from pathlib import Path

import oe_text.trainer as trainer_module


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_trainer_faults import build_trainer  # noqa: E402


output_dir, ready = sys.argv[1], Path(sys.argv[2])
write = trainer_module._write_json_atomic
calls = {"n": 0}


def hang_on_second(path, obj):
    calls["n"] += 1
    if calls["n"] == 2:
        Path(path + ".partial").write_text("")  # as if the process died mid-write
        ready.write_text(path)
        time.sleep(600)
    write(path, obj)


trainer_module._write_json_atomic = hang_on_second
build_trainer(output_dir, save_strategy="steps", save_steps=2, save_total_limit=1).train()
