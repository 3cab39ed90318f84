"""`import oe_text` and `oe-text --help` stay fast (no torch); `import oe_text` still registers the Auto classes."""

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
