"""Loads a saved detector and writes, per process, its logits, features and fitted scores on a few texts computed
inside `oe_text.inference.distributed_inference()`, and how many texts each process encoded.

Run under `accelerate launch`; used by tests/test_inference.py.
"""

import json
import sys
from pathlib import Path

import numpy as np
from accelerate import PartialState

from oe_text import OEClassifier
from oe_text.inference import distributed_inference


def main(detector_dir: str, output_dir: str) -> None:
    state = PartialState(cpu=True)  # joins the process group `accelerate launch` set up (gloo; without cpu=True, none)
    texts = json.loads((Path(output_dir) / "texts.json").read_text())
    model = OEClassifier.from_pretrained(detector_dir)
    rows: list[int] = []
    model.backbone.register_forward_pre_hook(lambda module, args, kwargs: rows.append(len(kwargs["input_ids"])),
                                             with_kwargs=True)  # fmt: skip
    model.predict_outputs(texts["probe"], batch_size=3)  # outside the block: every process encodes every text
    alone = sum(rows)
    rows.clear()
    with distributed_inference():
        logits, feats = model.predict_outputs(texts["probe"], ["fine-tuned:-1", "fine-tuned:1"], batch_size=3)
        knn = model.compute_ood_scores(texts["probe"], batch_size=3)  # fitted before, in one process
        # Fitted here: the training texts' features come from both processes.
        model.fit_ood_score("mahalanobis", texts["train"], texts["labels"], batch_size=3, activate=True)
        mahalanobis = model.compute_ood_scores(texts["probe"], batch_size=3)
    np.savez(
        Path(output_dir) / f"rank{state.process_index}.npz",
        logits=logits,
        last=feats["fine-tuned:-1"],
        layer1=feats["fine-tuned:1"],
        knn=knn,
        mahalanobis=mahalanobis,
    )
    report = {"world_size": state.num_processes, "rows_alone": alone, "rows_shared": sum(rows)}
    (Path(output_dir) / f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
