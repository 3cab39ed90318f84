"""Registration of the detectors with transformers' Auto classes, without importing torch at `import oe_text`.

`import oe_text` promises that `AutoConfig`, `AutoModelForSequenceClassification`, `AutoModelForImageClassification`
and `pipeline(...)` load a saved detector. Registering needs the detector classes, hence torch and transformers
(seconds of imports), which would make `import oe_text` and every `oe-text --help` slow. So registration happens when
it can first matter: right away if transformers' Auto modules are already imported, otherwise the moment they are
(a `sys.meta_path` finder runs it just after `transformers.models.auto.configuration_auto` / `.modeling_auto`
finish executing). Before that moment no Auto class exists that could look the model type up.

The config hook registers only the text config: it can fire while `transformers.modeling_utils` is still being
imported (its quantizer imports `configuration_auto`), so it must not import any model class. The model hook
registers every class (text and, with torchvision, image).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Callable


_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"


def register_config() -> None:
    """Register the text detectors' configs with `AutoConfig` (imports torch and transformers' config code, no model
    code)."""
    from transformers.models.auto.configuration_auto import AutoConfig

    from .configuration_lm import OELanguageModelConfig
    from .configuration_oe import OEConfig

    for config in (OEConfig, OELanguageModelConfig):
        AutoConfig.register(config.model_type, config, exist_ok=True)


def register_models() -> None:
    """Register the text, language-model and (with the `vision` extra) image detectors with the Auto classes; their
    modules do it when imported."""
    register_config()
    # `import_module` (not `from ... import`): the module may be mid-import (its own `from transformers import
    # AutoModel` is what loaded modeling_auto); it then registers itself when it finishes.
    importlib.import_module("oe_text.modeling_oe")
    importlib.import_module("oe_text.modeling_lm")
    try:
        importlib.import_module("oe_text.vision")
    except ImportError:  # no torchvision: only the text detector exists
        pass


class _AutoImportHook(importlib.abc.MetaPathFinder):
    """Runs the registration right after transformers' Auto module `name` is executed (once per module)."""

    def __init__(self, actions: dict[str, Callable[[], None]]):
        self.actions = dict(actions)

    def find_spec(self, name, path, target=None):
        action = self.actions.get(name)
        if action is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        del self.actions[name]
        if not self.actions and self in sys.meta_path:
            sys.meta_path.remove(self)
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            action()

        # An instance attribute on this module's own loader: its type (and `get_source` for tracebacks) is kept.
        loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Register now what transformers has already imported; hook the rest to its import."""
    actions = {}
    if _MODEL_AUTO in sys.modules:
        register_models()
        return
    if _CONFIG_AUTO in sys.modules:
        register_config()
    else:
        actions[_CONFIG_AUTO] = register_config
    actions[_MODEL_AUTO] = register_models
    if not any(isinstance(finder, _AutoImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AutoImportHook(actions))
