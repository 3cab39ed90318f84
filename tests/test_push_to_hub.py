"""End to end: `push_to_hub` through the real `huggingface_hub` client to a local fake Hub, then load by repo id.

`huggingface_hub` reads `HF_ENDPOINT` when it is imported, so the push and the load run in a child process whose
environment points at the server started here; nothing of oe_text or huggingface_hub is patched.
"""

import json
import os
import subprocess
import sys
import textwrap

import yaml
from hub_server import FakeHub


CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

    from oe_text.modeling_oe import OEClassifier

    words = ["[PAD]", "[UNK]", "the", "movie", "was", "good", "bad", "a", "film", "river", "king"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", model_max_length=16
    )
    texts = ["the movie was good", "a bad film", "river king", "the film was the movie"]
    for kind in sys.argv[1:]:
        torch.manual_seed(0)
        if kind == "transformer":
            import tempfile
            from transformers import BertConfig, BertModel

            backbone_dir = tempfile.mkdtemp()
            BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=32)).save_pretrained(backbone_dir)
            tokenizer.save_pretrained(backbone_dir)
            model = OEClassifier.from_backbone(backbone_dir, id2label=["negative", "positive"]).eval()
        else:
            model = OEClassifier.from_rnn(kind, tokenizer=tokenizer, id2label=["negative", "positive"]).eval()
        model.calibrate_threshold(texts, tpr=0.75, calibration_data={"dataset": "toy", "split": "validation"})
        model.record_oe_provenance(in_distribution_dataset="SetFit/sst2", auxiliary_dataset="Salesforce/wikitext",
                                   oe_weight=0.5, oe_loss="uniform")
        with torch.no_grad():
            reference = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits

        repo_id = f"user/tiny-oe-{kind}"
        commit = model.push_to_hub(repo_id, commit_message="Add detector")

        loaded = OEClassifier.from_pretrained(repo_id, use_safetensors=True)
        auto = AutoModelForSequenceClassification.from_pretrained(repo_id)
        with torch.no_grad():
            got = loaded(**loaded.tokenizer(texts, padding=True, return_tensors="pt")).logits
            got_auto = auto(**loaded.tokenizer(texts, padding=True, return_tensors="pt")).logits
        print(json.dumps({
            "kind": kind,
            "commit": commit.oid,
            "identical_logits": torch.equal(reference, got),
            "identical_auto_logits": torch.equal(reference, got_auto),
            "same_tokens": loaded.tokenizer(texts)["input_ids"] == tokenizer(texts)["input_ids"],
            "threshold": [model.config.ood_threshold, loaded.config.ood_threshold],
            "calibration": loaded.config.threshold_calibration,
            "detect_equal": loaded.detect(texts) == model.detect(texts),
            "detect": loaded.detect(texts),
        }))
    """
)


def child_env(hub: FakeHub, home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "OE_TEXT_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN="hf_fake_token_for_the_local_test_hub",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false",
    )
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    return env


KINDS = ("gru", "lstm", "transformer")


def test_push_to_local_hub_then_load_by_repo_id(tmp_path):
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, *KINDS],
            env=child_env(hub, tmp_path / "hf_home"),
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        outputs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        repos = dict(hub.repos)
        requests = list(hub.requests)

    assert [out["kind"] for out in outputs] == list(KINDS)
    for out in outputs:
        kind, repo_id = out["kind"], f"user/tiny-oe-{out['kind']}"
        repo = repos[repo_id]
        assert out["identical_logits"] and out["identical_auto_logits"] and out["same_tokens"], kind
        assert out["threshold"][0] == out["threshold"][1] is not None
        assert out["calibration"]["dataset"] == "toy" and out["calibration"]["n_examples"] == 4
        assert out["detect_equal"] and sum(d["is_ood"] for d in out["detect"]) == 1
        assert out["commit"] == repo.head

        # The Hub holds safetensors weights (no pickle), the config with the threshold, the tokenizer, our card.
        assert sorted(repo.files) == [
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
        config = json.loads(repo.files["config.json"])
        assert config["model_type"] == "oe-classifier" and config["ood_threshold"] == out["threshold"][0]
        assert config["backbone_type"] == kind
        readme = repo.files["README.md"].decode()
        metadata = yaml.safe_load(readme.split("---")[1])
        assert {"oe-text", "outlier-exposure", "ood-detection"} <= set(metadata["tags"])
        assert metadata["datasets"] == ["SetFit/sst2", "Salesforce/wikitext"]
        assert f'OEClassifier.from_pretrained("{repo_id}")' in readme
        # The weights were downloaded from the local Hub (pinned to the pushed commit), not from a cache.
        assert ("GET", f"/{repo_id}/resolve/{repo.head}/model.safetensors") in requests
        assert ("POST", f"/api/models/{repo_id}/commit/main") in requests
