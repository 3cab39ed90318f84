"""`import oe_text` and `oe-text --help` stay fast (no torch); `import oe_text` still registers the Auto classes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import oe_text


REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_public_names_match_the_lazy_import_table():
    assert set(oe_text.__all__) == set(oe_text._NAME_TO_MODULE) | {"__version__", "vision"}
    for name in oe_text.__all__:
        assert getattr(oe_text, name) is not None or name == "vision"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        oe_text.nope  # noqa: B018


@pytest.mark.parametrize("argv", [["--help"], ["detect", "--help"], ["score", "--help"]])
def test_cli_help_imports_neither_torch_nor_transformers(argv):
    # Seconds of imports (torch alone takes 1-2 s) are what made `oe-text --help` slow.
    code = (
        f"import sys\nfrom oe_text.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    assert _python(code).splitlines()[-1] == "[]"


# What `oe-text detect` must not import: data loading, evaluation, plotting and the training stack (seconds of imports
# that the one-line command does not use). torch, transformers.modeling_utils and what that module imports itself
# (accelerate, scipy, torchvision when installed) are needed to load any detector.
DETECT_NEEDS_NONE_OF = (
    "datasets",
    "evaluate",
    "matplotlib",
    "pandas",
    "pyarrow",
    "sklearn",
    "transformers.trainer",
    "transformers.training_args",
    "oe_text.data",
    "oe_text.evaluation",
    "oe_text.plotting",
    "oe_text.recipe",
    "oe_text.trainer",
)


def test_cli_detect_imports_no_data_evaluation_or_training_stack(tmp_path, tiny_tokenizer):
    from oe_text import OEClassifier

    detector = OEClassifier.from_rnn("gru", tokenizer=tiny_tokenizer, embedding_dim=8, hidden_size=8, num_layers=1)
    detector.config.ood_threshold = 0.0
    detector.save_pretrained(tmp_path / "detector")
    (tmp_path / "in.txt").write_text("good movie\nking of the north\n")
    # `main()` reading sys.argv, as the `oe-text` executable runs it.
    argv = ["oe-text", "detect", "--model", str(tmp_path / "detector"), "--input", str(tmp_path / "in.txt")]
    code = (
        f"import gc, json, sys\nfrom oe_text.cli import main\nsys.argv = {argv!r}\nassert main() == 0\n"
        f"print(json.dumps([sorted(m for m in {DETECT_NEEDS_NONE_OF!r} if m in sys.modules), "
        "'oe_text.modeling_oe' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0]))"
    )
    lines = _python(code).splitlines()
    records = [json.loads(line) for line in lines[:-1]]
    assert [r["text"] for r in records] == ["good movie", "king of the north"]
    assert all(r["is_ood"] == (r["ood_score"] > 0.0) for r in records)
    # Nothing it should not import; the detector was loaded; the collector is back on, with the startup objects frozen.
    assert json.loads(lines[-1]) == [[], True, True, True]


def test_startup_gc_pauses_the_collector_then_freezes():
    import gc

    from oe_text.cli import _startup_gc

    assert gc.isenabled()
    with _startup_gc(pause=False):
        assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with _startup_gc():
            assert not gc.isenabled()
            kept = [[]]
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen  # what the block created (at least `kept`) is frozen
        del kept
    finally:
        gc.unfreeze()  # this test process lives on: give the frozen objects back to the collector
    with pytest.raises(ValueError), _startup_gc():
        raise ValueError  # the collector comes back on when the block fails
    gc.unfreeze()
    assert gc.isenabled()


@pytest.mark.parametrize("transformers_first", [False, True])
def test_import_oe_text_registers_the_auto_classes(transformers_first):
    imports = ["import oe_text", "from transformers import AutoConfig, AutoModelForSequenceClassification"]
    ordered = imports[::-1] if transformers_first else imports
    code = "\n".join([*ordered, "from oe_text import OEConfig, OEClassifier, OELanguageModelConfig"])
    code += (
        "\nfrom transformers import AutoModelForCausalLM\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "print(CONFIG_MAPPING['oe-classifier'] is OEConfig, "
        "AutoModelForSequenceClassification._model_mapping[OEConfig] is OEClassifier, "
        "AutoModelForCausalLM._model_mapping[OELanguageModelConfig].__name__, "
        "'oe-image-classifier' in CONFIG_MAPPING)"
    )
    assert _python(code) == "True True OELanguageModelDetector True"


def test_auto_config_alone_knows_the_detector_config():
    # AutoConfig without any model class: the config hook registers OEConfig on its own.
    code = (
        "import sys, oe_text\nfrom transformers import AutoConfig\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "print('oe-classifier' in CONFIG_MAPPING)"
    )
    assert _python(code) == "True"
