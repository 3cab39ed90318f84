"""Language models as OOD detectors: `OELanguageModelDetector` and the helpers `OETrainer` and the LM recipe share.

Importing this module registers `OELanguageModelConfig` with `AutoConfig` (model type `"oe-language-model"`) and
`OELanguageModelDetector` with `AutoModelForCausalLM`.

Conventions of the language-model path (Hendrycks et al. 2019, `NLP_language_modeling/`):

* **Causal LMs only.** `is_causal_lm` recognises any `AutoModelForCausalLM` class (GPT-2, Llama, ...); an encoder or
  a sequence classifier is rejected with an error naming the class.
* **Padding.** Batches are padded, and what is padding is decided by the attention mask, never by the pad id. A
  tokenizer without a pad token gets its end-of-text token as pad token (`ensure_pad_token`; GPT-2's usual set-up),
  and fails with a clear error when it has neither.
* **Beginning of text.** A causal LM never predicts the first token it is given. When the tokenizer defines a
  beginning-of-text token that it does not add itself (GPT-2's `<|endoftext|>`), `encode_for_lm` prepends it, so
  every token of the text is predicted and a one-token text still has a likelihood.
* **Long texts.** Texts longer than the model's context are truncated to their **first** `max_length` tokens (the
  beginning-of-text token included), `max_length` being the smallest of the tokenizer's `model_max_length`, the
  model's context (`n_positions` / `max_position_embeddings`) and an explicit `max_length`.
* **Empty texts** (empty or whitespace only) are an error naming their index: there is no token to score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging

from .configuration_lm import OELanguageModelConfig
from .detection import OODDetectorMixin
from .detector_hub import DetectorHubMixin
from .hub import remote_code_kwargs, resolve_hub_id
from .inference import _check_texts, evaluation_mode, length_sorted_batches
from .lm_scores import LM_SCORES, compute_lm_score, get_lm_score_fn
from .losses import causal_lm_labels
from .modelcard import build_lm_model_card


logger = logging.get_logger(__name__)

_CONTEXT_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx", "seq_length", "max_sequence_length")


def is_causal_lm(model) -> bool:
    """Whether `model` (possibly wrapped by DDP/PEFT/`torch.compile`) is a causal language model.

    True for the classes `AutoModelForCausalLM` maps a config to (by class name, as `transformers.Trainer` does), for
    classes registered with `AutoModelForCausalLM.register`, and for models declaring `is_causal_lm = True`.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    for attr in ("module", "_orig_mod"):
        model = getattr(model, attr, model)
    if hasattr(model, "get_base_model") and callable(model.get_base_model):
        model = model.get_base_model()
    if getattr(model, "is_causal_lm", False) is True:
        return True
    cls = type(model)
    if cls.__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return True
    return cls in MODEL_FOR_CAUSAL_LM_MAPPING._extra_content.values()


def check_causal_lm(model, argument: str = "model", probe: bool = True) -> None:
    """Raise a `ValueError` naming the class when `model` is not a causal language model.

    With `probe=True` the model also runs once on 4 tokens to check that a prediction does not depend on later tokens:
    `AutoModelForCausalLM` also loads encoders such as BERT (`BertLMHeadModel`), which attend both ways unless
    configured as decoders, so their "likelihoods" would peek at the token they predict.
    """
    if not is_causal_lm(model):
        raise ValueError(
            f"`{argument}` must be a causal language model (a class AutoModelForCausalLM loads, e.g. "
            f"GPT2LMHeadModel), got {type(model).__name__}. Sequence classifiers are trained with OETrainer on "
            "labelled data and served by OEClassifier."
        )
    if not probe:
        return
    vocab = int(getattr(model.config, "vocab_size", 2) or 2)
    device = next(model.parameters()).device
    ids = torch.tensor([[1 % vocab, 2 % vocab, 3 % vocab, 4 % vocab]], device=device)
    changed = ids.clone()
    changed[0, -1] = 5 % vocab if vocab > 5 else 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            a = model(input_ids=ids).logits[0, :-1].float()
            b = model(input_ids=changed).logits[0, :-1].float()
    finally:
        model.train(was_training)
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
        raise ValueError(
            f"`{argument}` ({type(model).__name__}) is not causal: its predictions at earlier positions change with "
            "the last token, so it sees the tokens it should predict (an encoder such as BERT loaded with "
            "AutoModelForCausalLM without `is_decoder=True`). Use a decoder-only language model."
        )


def ensure_pad_token(tokenizer) -> Any:
    """Give `tokenizer` a pad token when it has none: its end-of-text (eos) token, else an error.

    Padding is masked by the attention mask everywhere in the LM path, so reusing the eos token is safe.

    Returns:
        the same tokenizer.
    """
    if getattr(tokenizer, "pad_token", None) is not None:
        return tokenizer
    eos = getattr(tokenizer, "eos_token", None)
    if eos is None:
        raise ValueError(
            f"The tokenizer ({type(tokenizer).__name__}) has no pad token and no eos token to use as one; batches of "
            "texts need padding. Set one, e.g. `tokenizer.add_special_tokens({'pad_token': '<pad>'})` and resize the "
            "model's embeddings."
        )
    logger.info(f"The tokenizer has no pad token; using its eos token {eos!r} (padding is masked by attention_mask).")
    tokenizer.pad_token = eos
    return tokenizer


def context_length(model_or_config) -> int | None:
    """The maximum sequence length (`n_positions`, `max_position_embeddings`, ...) if the config states one."""
    config = getattr(model_or_config, "config", model_or_config)
    for name in _CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def lm_max_length(tokenizer, model_or_config=None, max_length: int | None = None) -> int | None:
    """Truncation length: the smallest of `max_length`, the tokenizer's `model_max_length` and the model's context."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"`max_length` must be an integer >= 2 (a token and its successor), got {max_length!r}.")
    limits = [max_length, getattr(tokenizer, "model_max_length", None)]
    if model_or_config is not None:
        limits.append(context_length(model_or_config))
    limits = [m for m in limits if isinstance(m, int) and 0 < m < 1_000_000]
    return min(limits) if limits else None


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """`texts` as a non-empty list of non-blank strings; errors name the offending index."""
    return _check_texts(texts, empty_reason="a language model has no token to score")


def _prepends_bos(tokenizer) -> int | None:
    """The bos id to prepend, or None when the tokenizer has none or already adds it."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return None if probe and probe[0] == bos else bos


def encode_for_lm(
    tokenizer, texts: Sequence[str], max_length: int | None = None, check: bool = True, num_characters: bool = False
) -> dict[str, list[list[int]]]:
    """Tokenize texts for a causal LM with the rules of the module docstring (bos prepended, first tokens kept).

    Args:
        tokenizer: a Hugging Face tokenizer.
        texts (list of `str`): non-blank texts (`check=False` skips the check, for dataset `map` over clean text).
        max_length (`int`, *optional*): keep at most this many tokens per text (bos included).
        num_characters (`bool`, *optional*): also return `num_characters`, the characters the kept tokens cover
            (from a fast tokenizer's offsets: the end of the last kept token; else the text's length).

    Returns:
        `dict` with `input_ids` and `attention_mask`, lists of lists (unpadded), and `num_characters` when asked.
    """
    if check:
        texts = check_texts(texts)
    texts = list(texts)
    bos = _prepends_bos(tokenizer)
    limit = None if max_length is None else max_length - (bos is not None)
    offsets = num_characters and getattr(tokenizer, "is_fast", False)
    enc = tokenizer(texts, truncation=limit is not None, max_length=limit, return_offsets_mapping=offsets)
    ids = [([bos] if bos is not None else []) + list(row) for row in enc["input_ids"]]
    out = {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}
    if num_characters:
        if offsets:
            out["num_characters"] = [
                max([end for _, end in row] + [0]) or len(t) for row, t in zip(enc["offset_mapping"], texts)
            ]
        else:
            out["num_characters"] = [len(t) for t in texts]
    return out


class CausalLMCollator:
    """Pads tokenized rows with the tokenizer and adds `labels` = input ids with padding set to -100.

    Unlike `DataCollatorForLanguageModeling`, which masks every token equal to the pad id, the attention mask decides
    what is padding (so an eos token reused as pad token stays a target where it is real text).
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = ensure_pad_token(tokenizer)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        keep = ("input_ids", "attention_mask")
        batch = self.tokenizer.pad(
            [{k: row[k] for k in keep if k in row} for row in rows],
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        batch["labels"] = causal_lm_labels(batch["input_ids"], batch.get("attention_mask"))
        return dict(batch)


@torch.no_grad()
def score_texts_with_lm(
    model,
    tokenizer,
    texts: Sequence[str],
    scores: Sequence[str] = ("nll", "kl_uniform", "max_prob"),
    batch_size: int = 32,
    max_length: int | None = None,
    temperature: float = 1.0,
    progress: bool | str = False,
) -> dict[str, np.ndarray]:
    """OOD scores (`oe_text.lm_scores`) of raw texts under a causal LM, batched, under `no_grad`, in the texts' order.

    Texts are encoded with `encode_for_lm` (bos prepended, first `max_length` tokens kept; `max_length` defaults to
    the model's context), sorted by length to keep padding small, and sent to the model's device in batches; only
    the per-text scores are kept, never the `(n, T, V)` logits.

    Returns:
        `dict` score name -> `np.ndarray` of shape `(len(texts),)`, float64, higher = more anomalous.
    """
    texts = check_texts(texts)
    scores = list(scores)
    for name in scores:
        get_lm_score_fn(name)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    ensure_pad_token(tokenizer)
    limit = lm_max_length(tokenizer, model, max_length)
    enc = encode_for_lm(tokenizer, texts, max_length=limit, check=False, num_characters="bpc" in scores)
    order, batches = length_sorted_batches([len(ids) for ids in enc["input_ids"]], batch_size, progress)
    out: dict[str, list[np.ndarray]] = {name: [] for name in scores}
    with evaluation_mode(model):
        device = next(model.parameters()).device
        for idx in batches:
            batch = tokenizer.pad(
                [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]} for i in idx],
                padding=True,
                return_tensors="pt",
            ).to(device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            chars = [enc["num_characters"][i] for i in idx] if "bpc" in scores else None
            for name in scores:
                out[name].append(
                    compute_lm_score(
                        name,
                        logits,
                        batch["input_ids"],
                        batch["attention_mask"],
                        temperature=temperature,
                        num_characters=chars,
                    )
                )
    inverse = np.argsort(order, kind="stable")
    return {name: np.concatenate(values)[inverse] for name, values in out.items()}


# ------------------------------------------------------------------------------------------------ the detector
class OELanguageModelDetector(DetectorHubMixin, OODDetectorMixin, PreTrainedModel):
    """A causal language model as an OOD detector (Outlier Exposure for LMs, Hendrycks et al. 2019).

    Wraps any `AutoModelForCausalLM` model (`self.lm`) and scores texts with `oe_text.lm_scores` (default the
    paper's `kl_uniform`; `nll`, `bpc`, `max_prob`). The score, its temperature and the calibrated threshold live in
    the config (`OELanguageModelConfig`), so `save_pretrained` / `push_to_hub` (safetensors, the tokenizer, a model
    card) and `from_pretrained` / `AutoModelForCausalLM.from_pretrained` restore the decision rule; nothing needs
    `trust_remote_code` (importing `oe_text` registers the classes with the Auto API).

    Build one with `from_lm(model_or_id, tokenizer)`; train the wrapped LM with `OETrainer` (before or after
    wrapping: the detector is itself a causal LM, `forward` is the LM's), `calibrate_threshold(validation_texts)`,
    then `detect(texts)`.

    Attributes:
        tokenizer: the tokenizer `detect` uses; set by `from_lm` and `from_pretrained`, saved by `save_pretrained`.
    """

    config_class = OELanguageModelConfig
    _loads_tokenizer = True
    base_model_prefix = "lm"
    main_input_name = "input_ids"
    is_causal_lm = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: OELanguageModelConfig, lm: PreTrainedModel | None = None):
        super().__init__(config)
        if lm is None:
            if config.lm_config is None:
                raise ValueError(
                    "OELanguageModelConfig.lm_config is not set; build a detector with "
                    "`OELanguageModelDetector.from_lm(model_or_id, tokenizer)` or load one with `from_pretrained`."
                )
            lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config.lm_config), trust_remote_code=False)
        self.lm = lm
        self.tokenizer = None
        self.post_init()

    def _init_weights(self, module) -> None:
        """The wrapped LM initialises its own modules (dispatched by `post_init`); the wrapper has none."""

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def get_output_embeddings(self):
        return self.lm.get_output_embeddings()

    @classmethod
    def from_lm(
        cls,
        model_or_name: PreTrainedModel | str | os.PathLike,
        tokenizer=None,
        trust_remote_code: bool = False,
        **config_kwargs,
    ) -> OELanguageModelDetector:
        """Wrap a causal LM (an instance, or a Hub id / folder loaded with `AutoModelForCausalLM`) as a detector.

        Args:
            model_or_name: the LM, or where to load it from (resolved through the offline mirror when set).
            tokenizer (*optional*): its tokenizer; default: loaded from `model_or_name` when that is an id or folder.
                Given a pad token if it has none (`ensure_pad_token`).
            trust_remote_code (`bool`, *optional*, defaults to `False`): allow custom code shipped with a Hub LM to
                run (`oe_text.hub.remote_code_kwargs`); refused by default.
            config_kwargs: `OELanguageModelConfig` fields (`ood_score`, `truncation_length`, ...).

        Raises:
            `ValueError`: the model is not a causal LM (see `check_causal_lm`).
        """
        name = None
        if isinstance(model_or_name, (str, os.PathLike)):
            name = os.fspath(model_or_name)
            path = resolve_hub_id(name, "model")
            code = remote_code_kwargs(trust_remote_code, "language model")
            model_or_name = AutoModelForCausalLM.from_pretrained(path, **code)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(path, **code)
        lm = model_or_name
        check_causal_lm(lm, argument="model_or_name")
        config_kwargs.setdefault("base_model_name", name or getattr(lm.config, "_name_or_path", None) or None)
        config = OELanguageModelConfig(lm_config=lm.config.to_dict(), **config_kwargs)
        for tensor in (*lm.parameters(), *lm.buffers()):
            tensor._is_hf_initialized = True  # keep the LM's weights: post_init must not re-initialise them
        detector = cls(config, lm=lm)
        detector.tokenizer = ensure_pad_token(tokenizer) if tokenizer is not None else None
        detector.train(lm.training)
        return detector

    def forward(self, *args, **kwargs):
        """The wrapped LM's forward (a `CausalLMOutput`): the detector trains with `OETrainer` like any causal LM."""
        return self.lm(*args, **kwargs)

    # ------------------------------------------------------------------------------------------------ scoring
    def _tokenizer_or_raise(self, tokenizer):
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError(
                "This detector has no tokenizer: pass `tokenizer=`, or set `model.tokenizer` (from_lm and "
                "from_pretrained attach one)."
            )
        return ensure_pad_token(tokenizer)

    def score_texts(
        self,
        texts: str | Sequence[str],
        scores: Sequence[str] | None = None,
        batch_size: int = 32,
        tokenizer=None,
        max_length: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-text LM scores (default: the config's `ood_score`, plus `nll`), higher = more anomalous.

        Texts are encoded with `encode_for_lm` (bos prepended when the tokenizer has one, first `max_length`
        tokens kept; default `config.truncation_length`, else the LM's context); see the module docstring.
        """
        tokenizer = self._tokenizer_or_raise(tokenizer)
        if scores is None:
            scores = list(dict.fromkeys([self.config.ood_score, "nll"]))
        return score_texts_with_lm(
            self.lm,
            tokenizer,
            texts,
            scores=scores,
            batch_size=batch_size,
            max_length=max_length if max_length is not None else self.config.truncation_length,
            temperature=float(self.config.ood_temperature),
        )

    def compute_ood_scores(
        self, texts: Sequence[str], batch_size: int = 32, tokenizer=None, max_length: int | None = None
    ) -> np.ndarray:
        """OOD scores of raw texts with the config's `ood_score` and `ood_temperature` (for `calibrate_threshold`)."""
        score = self.config.ood_score
        return self.score_texts(texts, [score], batch_size, tokenizer, max_length)[score]

    def detect(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        tokenizer=None,
        threshold: float | None = None,
        require_threshold: bool = False,
        max_length: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score texts and flag the out-of-distribution ones.

        Returns:
            `list[dict]`, one per text, with `ood_score` (the config's score, higher = more anomalous), `is_ood`
            (`bool`; `None` when no threshold is calibrated and none is passed), `nll` (mean negative
            log-likelihood per token, nats) and `perplexity` (`exp(nll)`).
        """
        score = self.config.ood_score
        values = self.score_texts(texts, None, batch_size, tokenizer, max_length)
        decisions = self.ood_decisions(values[score], threshold=threshold, require_threshold=require_threshold)
        return [
            {"ood_score": float(s), "is_ood": d, "nll": float(n), "perplexity": float(np.exp(n))}
            for s, d, n in zip(values[score].tolist(), decisions, values["nll"].tolist())
        ]

    # ------------------------------------------------------------------------------------------------ detection core
    @staticmethod
    def get_ood_score_fn(name: str):
        """LM detectors score with `oe_text.lm_scores` (`kl_uniform`, `nll`, `bpc`, `max_prob`, registered ones)."""
        return get_lm_score_fn(name)

    def ood_scores_from_logits(self, logits) -> np.ndarray:
        raise NotImplementedError(
            "LM scores need the token ids and padding mask besides the logits: use `detector.score_texts(texts)` or "
            "`oe_text.lm_scores.compute_lm_score(name, logits, input_ids, attention_mask)`."
        )

    def fit_ood_score(self, kind: str, *args, **kwargs) -> str:
        raise NotImplementedError(
            f"Fitted scores ({kind!r}: k-NN, Mahalanobis, combinations) are fitted on a classifier's features; a "
            f"language-model detector scores with {sorted(LM_SCORES)} (`set_ood_score`, `register_lm_score`)."
        )

    # ------------------------------------------------------------------------------------------------ save / load
    @classmethod
    def _prepare_loaded_tokenizer(cls, tokenizer):
        """A language model's tokenizer needs a pad token for batches (`ensure_pad_token`)."""
        return ensure_pad_token(tokenizer) if tokenizer is not None else None

    def build_model_card(self, **card_kwargs):
        """The detector's model card (`oe_text.modelcard.build_lm_model_card`)."""
        return build_lm_model_card(self.config, **card_kwargs)


AutoConfig.register(OELanguageModelConfig.model_type, OELanguageModelConfig, exist_ok=True)
AutoModelForCausalLM.register(OELanguageModelConfig, OELanguageModelDetector, exist_ok=True)
