"""`OEClassifier`: a Hub-native text classifier that also flags out-of-distribution inputs.

One `PreTrainedModel` for two kinds of backbone:

* any Hugging Face encoder (`OEClassifier.from_backbone("sentence-transformers/all-MiniLM-L6-v2", num_labels=2)`),
  pooled (masked mean or first token) and followed by dropout + a linear head;
* the Outlier Exposure paper's recurrent baselines trained from scratch (`OEClassifier.from_rnn("gru", ...)`: 50-dim
  embeddings, 2 layers of 128 units, linear head on the last hidden state), with a sentencepiece tokenizer trained on
  the in-distribution text (`oe_text.tokenization.train_sentencepiece_tokenizer`).

The OOD score, its temperature and the calibrated decision threshold live in the config (`OEConfig`), so a detector
saved with `save_pretrained` / `push_to_hub` is restored with its decision rule by `OEClassifier.from_pretrained`,
`AutoModelForSequenceClassification.from_pretrained` or `transformers.pipeline("text-classification", ...)`. Weights
are safetensors; nothing needs `trust_remote_code` (importing `oe_text` registers the classes with the Auto API).

Importing this module registers `OEConfig` with `AutoConfig` (model type `"oe-classifier"`) and `OEClassifier` with
`AutoModelForSequenceClassification`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers import initialization as hf_init
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging

from .configuration_oe import OEConfig
from .detection import OODDetectorMixin, labels_kwargs, parse_feature_key
from .detector_hub import TOKENIZER_HUB_KWARGS, DetectorHubMixin
from .hub import remote_code_kwargs, resolve_hub_id
from .inference import predict_outputs
from .modelcard import build_model_card
from .modeling_rnn import RNN_KINDS, RNNEncoder, rnn_backbone_config


logger = logging.get_logger(__name__)

# Keys of a backbone's `config.to_dict()` that describe where it came from or its own head, not its architecture.
# `auto_map` points at custom code: a saved detector never refers to any.
_BACKBONE_CONFIG_DROP = (
    "_name_or_path",
    "transformers_version",
    "architectures",
    "id2label",
    "label2id",
    "auto_map",
)


def _backbone_config_dict(config) -> dict[str, Any]:
    # A JSON round trip turns dtypes and other objects into the plain values config.json will hold anyway.
    values = json.loads(config.to_json_string(use_diff=False))
    return {k: v for k, v in values.items() if k not in _BACKBONE_CONFIG_DROP}


def _pooling_kwargs(config) -> dict[str, Any]:
    """`add_pooling_layer=False` for encoders that accept it: their pooler is unused (and would get no gradient)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        model_cls = MODEL_MAPPING[type(config)]
    except KeyError:
        return {}
    return (
        {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_cls.__init__).parameters else {}
    )


def _sentence_transformers_max_length(path: str) -> int | None:
    """`max_seq_length` of a sentence-transformers checkpoint (e.g. 256 for all-MiniLM-L6-v2), if it has one."""
    file = os.path.join(path, "sentence_bert_config.json")
    if not os.path.isfile(file):
        return None
    with open(file) as f:
        value = json.load(f).get("max_seq_length")
    return value if isinstance(value, int) and value > 0 else None


class OEClassifier(DetectorHubMixin, OODDetectorMixin, PreTrainedModel):
    """Text classifier + OOD detector (Outlier Exposure, Hendrycks et al. 2019); transformer or GRU/LSTM backbone.

    Build one with `from_backbone` (pretrained encoder) or `from_rnn` (paper's baseline from scratch), train it with
    `OETrainer`, calibrate its threshold with `calibrate_threshold`, save or push it, and call `detect(texts)`.

    Attributes:
        tokenizer: the tokenizer `detect` uses; set by `from_backbone`, `from_rnn(tokenizer=...)` and
            `from_pretrained` (when the folder/repo holds one), and saved by `save_pretrained`.
    """

    config_class = OEConfig
    _loads_tokenizer = True
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    _no_split_modules = ["RNNEncoder"]
    # The attention implementation is the transformer backbone's business (it is passed on to it when requested).
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The loss is a plain per-batch mean: Trainer must not pass `num_items_in_batch`.
    accepts_loss_kwargs = False

    def __init__(self, config: OEConfig, backbone: nn.Module | None = None):
        requested_attn = config._attn_implementation
        super().__init__(config)
        if config.backbone_config is None:
            raise ValueError(
                "OEConfig.backbone_config is not set; build a detector with `OEClassifier.from_backbone(...)` or "
                "`OEClassifier.from_rnn(...)`, or load one with `OEClassifier.from_pretrained(...)`."
            )
        if config.num_labels is None or config.num_labels < 2:
            raise ValueError(f"OEClassifier needs num_labels >= 2 (softmax OOD scores), got {config.num_labels}.")
        self.tokenizer = None
        if config.backbone_type == "transformer":
            if backbone is None:
                backbone = self._build_transformer_backbone(config, requested_attn)
            hidden = backbone.config.hidden_size
            default_dropout = next(
                (
                    getattr(backbone.config, name)
                    for name in ("classifier_dropout", "hidden_dropout_prob", "dropout")
                    if isinstance(getattr(backbone.config, name, None), (int, float))
                ),
                0.1,
            )
            forward_params = inspect.signature(backbone.forward).parameters
            self._backbone_takes_token_type_ids = "token_type_ids" in forward_params
        else:
            if backbone is None:
                backbone = RNNEncoder(config.backbone_type, **config.backbone_config)
            hidden = backbone.hidden_size
            default_dropout = 0.0
            self._backbone_takes_token_type_ids = False
        self.backbone = backbone
        dropout = config.classifier_dropout if config.classifier_dropout is not None else default_dropout
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(hidden, config.num_labels)
        # A frozen copy of the pretrained encoder, whose features feature scores can read (see OEConfig).
        self.feature_backbone = None
        if config.pretrained_feature_encoder:
            self.feature_backbone = self._build_transformer_backbone(config, requested_attn)
            self.feature_backbone.requires_grad_(False)
        self._init_ood_state()
        self.post_init()

    @staticmethod
    def _build_transformer_backbone(config: OEConfig, attn_implementation: str | None = None) -> nn.Module:
        """The transformer encoder described by `config.backbone_config`, randomly initialised (no Hub access)."""
        backbone_config = AutoConfig.for_model(**config.backbone_config)
        kwargs = _pooling_kwargs(backbone_config)
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        # A saved config's `auto_map` must not pull in custom code: the library's own class is used.
        return AutoModel.from_config(backbone_config, trust_remote_code=False, **kwargs)

    @property
    def supports_gradient_checkpointing(self) -> bool:
        """Activation checkpointing is delegated to a transformer backbone; recurrent backbones do not support it."""
        backbone = getattr(self, "backbone", None)
        return isinstance(backbone, PreTrainedModel) and bool(backbone.supports_gradient_checkpointing)

    # ------------------------------------------------------------------------------------------------ weights
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise the head and recurrent backbones; pretrained transformer backbones are never touched.

        A transformer backbone is a `PreTrainedModel` child, so `initialize_weights` dispatches its own
        `_init_weights` to it, and `from_backbone` marks its loaded parameters as initialised. The guarded
        `transformers.initialization` functions skip any parameter loaded by `from_pretrained`.
        """
        if module is self.classifier:
            if self.config.backbone_type == "transformer":
                std = (self.config.backbone_config or {}).get("initializer_range", 0.02)
                hf_init.normal_(module.weight, mean=0.0, std=std)
                hf_init.zeros_(module.bias)
            else:
                # PyTorch's default Linear init, as in the paper's code.
                bound = 1.0 / float(np.sqrt(module.in_features))
                hf_init.uniform_(module.weight, -bound, bound)
                hf_init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, RNNEncoder):
            # PyTorch defaults (the paper's): N(0, 1) embeddings with a zero pad row, U(+-1/sqrt(hidden)) recurrence.
            emb = module.embeddings
            loaded = getattr(emb.weight, "_is_hf_initialized", False)
            hf_init.normal_(emb.weight, mean=0.0, std=1.0)
            if emb.padding_idx is not None and not loaded:
                with torch.no_grad():
                    emb.weight[emb.padding_idx].zero_()
            bound = 1.0 / float(np.sqrt(module.hidden_size))
            for param in module.rnn.parameters():
                hf_init.uniform_(param, -bound, bound)

    # ------------------------------------------------------------------------------------------------ factories
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike,
        num_labels: int | None = None,
        id2label: Mapping[int, str] | Sequence[str] | None = None,
        label2id: Mapping[str, int] | None = None,
        pooling: str = "mean",
        load_tokenizer: bool = True,
        backbone_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        **config_kwargs,
    ) -> OEClassifier:
        """A detector on a pretrained Hugging Face encoder, with a fresh linear head.

        The id is resolved with `oe_text.hub.resolve_hub_id` (the offline mirror when `OE_TEXT_MIRROR` is set). The
        backbone's pretrained weights are kept as they are; its config is copied into `config.backbone_config` so that
        a saved detector is rebuilt without downloading the backbone again. For sentence-transformers checkpoints
        the tokenizer's `model_max_length` is set to their `max_seq_length` (256 for all-MiniLM-L6-v2).

        Args:
            name_or_path (`str` or `os.PathLike`): Hub id or local folder of an encoder loadable with `AutoModel`.
            num_labels (`int`, *optional*): number of in-distribution classes (default 2, or `len(id2label)`).
            id2label (`dict` or `list[str]`, *optional*): class names, e.g. `["negative", "positive"]`.
            label2id (`dict`, *optional*): inverse of `id2label` (derived when omitted).
            pooling (`str`, *optional*, defaults to `"mean"`): `"mean"` (masked mean, as sentence-transformers) or
                `"cls"` (first token).
            load_tokenizer (`bool`, *optional*, defaults to `True`): attach the backbone's tokenizer as
                `model.tokenizer` (so `detect` and `save_pretrained` include it).
            backbone_kwargs (`dict`, *optional*): extra arguments of `AutoModel.from_pretrained` (e.g. `revision`).
            trust_remote_code (`bool`, *optional*, defaults to `False`): allow custom code shipped with the backbone
                (`auto_map`) to run; off by default, and a warning is printed once when on.
            config_kwargs: other `OEConfig` fields (`classifier_dropout`, `ood_score`, `ood_temperature`, ...).

        Returns:
            `OEClassifier` in training mode.
        """
        path = resolve_hub_id(name_or_path, "model")
        backbone_kwargs = dict(backbone_kwargs or {})
        code_kwargs = remote_code_kwargs(backbone_kwargs.pop("trust_remote_code", trust_remote_code), "backbone")
        backbone = AutoModel.from_pretrained(path, **backbone_kwargs, **code_kwargs)
        if _pooling_kwargs(backbone.config) and getattr(backbone, "pooler", None) is not None:
            # The head reads pooled hidden states, never the pooler; dropping it matches the backbone rebuilt on
            # load (`add_pooling_layer=False`) and leaves no parameter without gradient.
            backbone.pooler = None
        config = OEConfig(
            backbone_type="transformer",
            backbone_config=_backbone_config_dict(backbone.config),
            pooling=pooling,
            base_model_name=os.fspath(name_or_path),
            **labels_kwargs(num_labels, id2label, label2id, default_num_labels=2),
            **config_kwargs,
        )
        # Mark the pretrained weights as initialised so that `post_init` cannot overwrite them.
        for tensor in (*backbone.parameters(), *backbone.buffers()):
            tensor._is_hf_initialized = True
        model = cls(config, backbone=backbone)
        if load_tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(
                path, **{k: v for k, v in backbone_kwargs.items() if k in TOKENIZER_HUB_KWARGS}, **code_kwargs
            )
            max_length = _sentence_transformers_max_length(path)
            if max_length is not None:
                tokenizer.model_max_length = max_length
            model.tokenizer = tokenizer
        model.train()
        return model

    @classmethod
    def from_rnn(
        cls,
        kind: str = "gru",
        vocab_size: int | None = None,
        num_labels: int | None = None,
        id2label: Mapping[int, str] | Sequence[str] | None = None,
        label2id: Mapping[str, int] | None = None,
        tokenizer=None,
        embedding_dim: int = 50,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        pad_token_id: int | None = None,
        **config_kwargs,
    ) -> OEClassifier:
        """The paper's recurrent baseline (GRU, or an LSTM of the same shape), randomly initialised.

        Defaults are the paper's NLP model: 50-dim embeddings, 2 unidirectional layers of 128 units, linear head on
        the top layer's state after the last token, no dropout.

        Args:
            kind (`str`, *optional*, defaults to `"gru"`): `"gru"` or `"lstm"`.
            vocab_size (`int`, *optional*): embedding rows; default `len(tokenizer)`.
            num_labels, id2label, label2id: as in `from_backbone`.
            tokenizer (*optional*): the tokenizer to attach (e.g. from `train_sentencepiece_tokenizer`); gives the
                default `vocab_size` and `pad_token_id`.
            embedding_dim, hidden_size, num_layers, dropout: recurrent backbone shape; `dropout` is between layers.
            pad_token_id (`int`, *optional*): padding id (default: the tokenizer's, else 0).
            config_kwargs: other `OEConfig` fields (`classifier_dropout`, `ood_score`, ...).

        Returns:
            `OEClassifier` in training mode.
        """
        if kind not in RNN_KINDS:
            raise ValueError(f"`kind` must be one of {RNN_KINDS}, got {kind!r}.")
        if vocab_size is None:
            if tokenizer is None:
                raise ValueError("Pass `vocab_size` or a `tokenizer` (whose length gives the vocabulary size).")
            vocab_size = len(tokenizer)
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
            pad_token_id = 0 if pad_token_id is None else pad_token_id
        backbone_config = rnn_backbone_config(
            vocab_size,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            pad_token_id=pad_token_id,
        )
        config = OEConfig(
            backbone_type=kind,
            backbone_config=backbone_config,
            pad_token_id=pad_token_id,
            **labels_kwargs(num_labels, id2label, label2id, default_num_labels=2),
            **config_kwargs,
        )
        model = cls(config)
        model.tokenizer = tokenizer
        model.train()
        return model

    # ------------------------------------------------------------------------------------------------ forward
    def extract_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """The features the classification head reads, shape `(batch, hidden)` (pooled states, before dropout)."""
        features, _ = self._encode(input_ids, attention_mask, token_type_ids, output_hidden_states=False, **kwargs)
        return features

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits `(batch, num_labels)` from `extract_features` output (dropout is active only in training)."""
        return self.classifier(self.dropout(features))

    def _pool(self, states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`config.pooling` of token states `(batch, seq, hidden)`: masked mean or first token."""
        if self.config.pooling == "cls":
            return states[:, 0]
        mask = (
            attention_mask.to(states.dtype)
            if attention_mask is not None
            else torch.ones(states.shape[:2], dtype=states.dtype, device=states.device)
        ).unsqueeze(-1)
        return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def _transformer_inputs(self, input_ids, attention_mask, token_type_ids) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._backbone_takes_token_type_ids:
            inputs["token_type_ids"] = token_type_ids
        return inputs

    def _encode(self, input_ids, attention_mask, token_type_ids, output_hidden_states, **kwargs):
        if input_ids is None:
            raise ValueError("`input_ids` is required.")
        if self.config.backbone_type != "transformer":
            unknown = sorted(set(kwargs) - {"num_items_in_batch"})
            if unknown:
                raise TypeError(f"Unexpected input(s) {unknown} for a {self.config.backbone_type} backbone.")
            # Recurrent backbones have one segment: `token_type_ids` is accepted (for a common collator) and unused.
            return self.backbone(input_ids, attention_mask), None
        kwargs.pop("num_items_in_batch", None)
        inputs = self._transformer_inputs(input_ids, attention_mask, token_type_ids)
        out = self.backbone(**inputs, output_hidden_states=output_hidden_states, **kwargs)
        features = self._pool(out[0], attention_mask)
        hidden_states = getattr(out, "hidden_states", None) if output_hidden_states else None
        return features, hidden_states

    def logits_and_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        feature_keys: Sequence[str] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and the requested pooled features of one batch, from one pass of each encoder involved.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenized batch.
            feature_keys (sequence of `str`): `oe_text.detection.feature_key(encoder, layer)` values:
                `"fine-tuned:-1"` is what the head reads; `"fine-tuned:<l>"` pools hidden layer `l` of the same pass
                (transformers); `"pretrained:<l>"` pools layer `l` of the frozen pretrained encoder
                (`config.pretrained_feature_encoder`).

        Returns:
            `(logits, {key: features})`.
        """
        layers: dict[str, set[int]] = {"fine-tuned": set(), "pretrained": set()}
        for key in feature_keys:
            encoder, layer = parse_feature_key(key)
            if encoder not in layers:
                raise ValueError(f"Unknown feature encoder {encoder!r} in {key!r}; use 'fine-tuned' or 'pretrained'.")
            if self.config.backbone_type != "transformer" and (encoder != "fine-tuned" or layer != -1):
                raise ValueError(
                    f"A {self.config.backbone_type} detector only has the features its head reads ('fine-tuned:-1'), "
                    f"not {key!r}."
                )
            layers[encoder].add(layer)
        need_hidden = bool(layers["fine-tuned"] - {-1})
        pooled, hidden = self._encode(input_ids, attention_mask, token_type_ids, output_hidden_states=need_hidden)
        logits = self.classify_features(pooled)
        out: dict[str, torch.Tensor] = {}
        for layer in layers["fine-tuned"]:
            out[f"fine-tuned:{layer}"] = pooled if layer == -1 else self._pool(hidden[layer], attention_mask)
        if layers["pretrained"]:
            if self.feature_backbone is None:
                raise ValueError(
                    "This detector has no pretrained feature encoder; attach one with `attach_pretrained_encoder()` "
                    "(or fit a score with `features='pretrained'`, which attaches it)."
                )
            frozen = self.feature_backbone(
                **self._transformer_inputs(input_ids, attention_mask, token_type_ids),
                output_hidden_states=bool(layers["pretrained"] - {-1}),
            )
            for layer in layers["pretrained"]:
                states = frozen[0] if layer == -1 else frozen.hidden_states[layer]
                out[f"pretrained:{layer}"] = self._pool(states, attention_mask)
        return logits, out

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """Classify a batch of token ids.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq_len)`): token ids.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 for tokens, 0 for padding.
            token_type_ids (`torch.LongTensor`, *optional*): segment ids, passed to transformer backbones that take
                them; ignored by recurrent backbones.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): class ids; the loss is their mean
                cross-entropy.
            output_hidden_states (`bool`, *optional*): return the transformer backbone's hidden states (recurrent
                backbones return `None`).
            return_dict (`bool`, *optional*): return a `SequenceClassifierOutput` (default) or a tuple.
            kwargs: passed to a transformer backbone (e.g. `position_ids`, `output_attentions`).

        Returns:
            `SequenceClassifierOutput` with `loss` (when `labels` is given), `logits` `(batch, num_labels)` and
            `hidden_states`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        features, hidden_states = self._encode(
            input_ids, attention_mask, token_type_ids, output_hidden_states=output_hidden_states, **kwargs
        )
        logits = self.classify_features(features)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device).view(-1))
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)

    # ------------------------------------------------------------------------------------------------ detection
    def _tokenizer_or_raise(self, tokenizer):
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError(
                "This detector has no tokenizer: pass `tokenizer=`, or set `model.tokenizer` (from_pretrained "
                "attaches the tokenizer saved beside the weights; from_rnn takes `tokenizer=`)."
            )
        return tokenizer

    def predict_outputs(
        self,
        texts: Sequence[str],
        feature_keys: Sequence[str] = (),
        batch_size: int = 64,
        tokenizer=None,
        max_length: int | None = None,
        progress: bool | str = False,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits and the requested features of raw texts (`oe_text.inference.predict_outputs`).

        Texts are tokenized with `tokenizer` (default `self.tokenizer`) and truncated to the model's maximum length.
        """
        tokenizer = self._tokenizer_or_raise(tokenizer)
        return predict_outputs(
            self,
            tokenizer,
            texts,
            feature_keys=feature_keys,
            batch_size=batch_size,
            max_length=max_length,
            progress=progress,
        )

    def detect(
        self,
        texts: str | Sequence[str],
        batch_size: int = 64,
        tokenizer=None,
        threshold: float | None = None,
        require_threshold: bool = False,
        max_length: int | None = None,
    ) -> list[dict[str, Any]]:
        """Classify texts and flag the out-of-distribution ones.

        Texts are tokenized with the saved tokenizer (or `tokenizer`), truncated to the model's maximum length
        (the smaller of the tokenizer's `model_max_length` and the backbone's `max_position_embeddings`), and run in
        batches under `no_grad` on the model's device. Logits and the features a fitted score reads come from one
        forward pass. Safe to call from several threads: calls on one model are serialised and its train/eval mode
        is restored (`oe_text.inference.evaluation_mode`).

        Args:
            texts (`str` or list of `str`): the inputs; an empty list or an empty string is an error.
            batch_size (`int`, *optional*, defaults to 64): texts per forward pass.
            tokenizer (*optional*): overrides `self.tokenizer`.
            threshold (`float`, *optional*): overrides the calibrated `config.ood_threshold`.
            require_threshold (`bool`, *optional*, defaults to `False`): raise `ThresholdNotCalibratedError` instead
                of returning `is_ood=None` when no threshold is available.
            max_length (`int`, *optional*): overrides the truncation length; a positive int no larger than the
                backbone's `max_position_embeddings` (else `ValueError`).

        Returns:
            `list[dict]`, one per text (also for a single string), with `label` (predicted class name), `score`
            (its softmax probability), `ood_score` (higher = more anomalous) and `is_ood` (`bool`; `None` when no
            threshold is calibrated and none is passed).
        """
        return self._detect(
            texts,
            threshold=threshold,
            require_threshold=require_threshold,
            batch_size=batch_size,
            tokenizer=tokenizer,
            max_length=max_length,
        )

    # ------------------------------------------------------------------------------------------------ fitted scores
    def _fit_data(self, data, labels=None) -> tuple[list[str], np.ndarray | None]:
        """Texts (and labels) of `fit_ood_score` data: a list of strings, or a `Dataset` with `text` / `label`."""
        columns = getattr(data, "column_names", None)
        if columns is not None:
            if "text" not in columns:
                raise ValueError(f"`data` has no 'text' column (columns: {columns}); pass a list of texts instead.")
            if labels is None and "label" in columns:
                labels = data["label"]
            data = data["text"]
        if isinstance(data, str):
            data = [data]
        texts = list(data)
        return texts, None if labels is None else np.asarray(labels)

    def attach_pretrained_encoder(self, name_or_path: str | os.PathLike | None = None, **kwargs) -> None:
        """Attach a frozen copy of the pretrained encoder (`feature_backbone`) for `features="pretrained"` scores.

        Args:
            name_or_path (`str`, *optional*): the encoder's Hub id or folder; default `config.base_model_name` (the
                encoder `from_backbone` started from). Resolved through the offline mirror when `OE_TEXT_MIRROR` is
                set; never runs remote code.
            kwargs: extra arguments of `AutoModel.from_pretrained` (e.g. `revision`).
        """
        if self.config.backbone_type != "transformer":
            raise ValueError(f"A {self.config.backbone_type} detector has no pretrained encoder to keep.")
        name = name_or_path or self.config.base_model_name
        if name is None:
            raise ValueError("`config.base_model_name` is not set: pass the pretrained encoder's `name_or_path`.")
        encoder = AutoModel.from_pretrained(resolve_hub_id(name, "model"), trust_remote_code=False, **kwargs)
        if getattr(encoder, "pooler", None) is not None and _pooling_kwargs(encoder.config):
            encoder.pooler = None
        if encoder.config.hidden_size != self.backbone.config.hidden_size:
            raise ValueError(
                f"The pretrained encoder {name!r} has hidden size {encoder.config.hidden_size}, the detector's "
                f"{self.backbone.config.hidden_size}; it must be the encoder the detector was fine-tuned from."
            )
        if _backbone_config_dict(encoder.config) != self.config.backbone_config:
            # The copy is rebuilt from `backbone_config` when the detector is loaded: the two must describe the same
            # architecture.
            raise ValueError(f"The pretrained encoder {name!r} is not the architecture of this detector's backbone.")
        encoder.requires_grad_(False)
        encoder.eval()
        self.feature_backbone = encoder.to(self.device)
        self.config.pretrained_feature_encoder = True

    def _ensure_pretrained_encoder(self) -> None:
        if self.feature_backbone is None:
            self.attach_pretrained_encoder()

    def _feature_description(self, encoder: str) -> dict[str, Any]:
        if encoder == "input-length":
            return {"feature": "log(1 + number of whitespace-separated words) of the raw text, before truncation"}
        if self.config.backbone_type != "transformer":
            return {"pooling": "last-token", "model": self.config.backbone_type}
        model = self.config.base_model_name if encoder == "pretrained" else "this detector's fine-tuned encoder"
        return {"pooling": self.config.pooling, "model": model}

    # ------------------------------------------------------------------------------------------------ save / load
    def build_model_card(self, **card_kwargs):
        """The detector's model card (`oe_text.modelcard.build_model_card`)."""
        return build_model_card(self.config, **card_kwargs)


AutoConfig.register(OEConfig.model_type, OEConfig, exist_ok=True)
AutoModelForSequenceClassification.register(OEConfig, OEClassifier, exist_ok=True)


__all__ = ["OEClassifier", "OEConfig"]
