import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


SCRIPT = Path(__file__).parent / "scripts" / "record_outliers.py"


@pytest.mark.multiprocess
def test_two_processes_draw_different_outliers(tmp_path):
    # `accelerate launch --cpu --num_processes 2` silently starts one process; --multi_gpu with
    # ACCELERATE_USE_CPU starts two CPU processes talking over gloo.
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(SCRIPT), str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"outliers_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    seen0, seen1 = ranks[0]["outliers"], ranks[1]["outliers"]
    assert len(seen0) == len(seen1) == 16  # 4 steps x 4 outliers on each process
    assert not set(seen0) & set(seen1)  # disjoint shards of the same pass
    assert len(set(seen0)) == len(set(seen1)) == 16
    logged = [e for e in ranks[0]["log"] if "oe_loss" in e]
    assert logged and all(e["oe_loss"] > 0 for e in logged)
