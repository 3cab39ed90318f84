"""Training arguments of `OETrainer`: `transformers.TrainingArguments` plus the Outlier Exposure settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments


OE_LOSSES = ("uniform", "energy", "margin")
# OE terms per kind of model: "margin" ranks sequence likelihoods (language models only), "energy" needs class logits.
CLASSIFIER_OE_LOSSES = ("uniform", "energy")
CAUSAL_LM_OE_LOSSES = ("uniform", "margin")
OE_LENGTH_MATCHING = ("none", "truncate", "bucket")


@dataclass
class OETrainingArguments(TrainingArguments):
    """`TrainingArguments` with the Outlier Exposure (OE) settings of `OETrainer`.

    The training objective is `CE(in-distribution) + oe_weight * OE-term(outliers)`, with the OE term either the
    cross-entropy from the softmax to the uniform distribution (`oe_loss="uniform"`, Hendrycks et al. 2019) or the
    energy-bounded squared hinge of Liu et al. 2020 (`oe_loss="energy"`). For causal language models CE is the
    next-token cross-entropy, `"uniform"` applies per token, and `oe_loss="margin"` ranks sequence log-likelihoods
    (the paper's density-estimation variant).
    """

    oe_weight: float = field(
        default=0.5,
        metadata={
            "help": "Weight λ of the OE term. The paper uses 0.5 for vision and 1.0 in its NLP code; 0 turns OE off "
            "(the trainer then behaves exactly like transformers.Trainer)."
        },
    )
    oe_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Auxiliary outliers per device per micro-batch. Default: per_device_train_batch_size, as the "
            "paper's NLP code (its vision code uses twice the in-distribution batch)."
        },
    )
    oe_loss: str = field(
        default="uniform",
        metadata={
            "help": "OE term: 'uniform' (cross-entropy of the softmax on outliers to the uniform distribution, "
            "minimum log K; per token for causal LMs), 'energy' (squared hinge on the free energy, Liu et al. 2020; "
            "classifiers) or 'margin' (outlier log-likelihood per token pushed oe_margin below the in-distribution "
            "one; causal LMs).",
            "choices": list(OE_LOSSES),
        },
    )
    oe_energy_m_in: float = field(
        default=-25.0,
        metadata={"help": "Energy margin m_in for in-distribution inputs (oe_loss='energy'); -25 in Liu et al."},
    )
    oe_energy_m_out: float = field(
        default=-7.0,
        metadata={"help": "Energy margin m_out for outliers (oe_loss='energy'); -7 in Liu et al."},
    )
    oe_energy_temperature: float = field(
        default=1.0, metadata={"help": "Temperature T of the free energy -T logsumexp(z/T) (oe_loss='energy')."}
    )
    oe_margin: float = field(
        default=1.0,
        metadata={"help": "Margin in nats per token of oe_loss='margin' (causal language models)."},
    )
    oe_text_column: str = field(
        default="text",
        metadata={"help": "Column of raw text in the outlier dataset, tokenized with the trainer's processing_class."},
    )
    oe_max_length: int | None = field(
        default=None,
        metadata={"help": "Truncation length for outlier text. Default: the tokenizer's model_max_length."},
    )
    oe_length_matching: str = field(
        default="none",
        metadata={
            "help": "How outliers are matched to the length L of the in-distribution batches of an optimizer step "
            "(the longest micro-batch), so in-distribution rows are not padded to outlier length. 'none': outliers "
            "as drawn, the joint batch padded to the longest row. 'truncate': outliers cut to L tokens. 'bucket': "
            "outliers bucketed by token length and drawn from the bucket of lengths up to L (as the paper's "
            "torchtext BucketIterator), then cut to L. The recipes use 'bucket'. Streamed or image outliers: "
            "'bucket' acts as 'truncate' (no lengths known in advance), which leaves images unchanged.",
            "choices": list(OE_LENGTH_MATCHING),
        },
    )
    oe_length_bucket_size: int = field(
        default=256,
        metadata={"help": "Minimum outliers per length bucket (oe_length_matching='bucket'); rarer lengths merge."},
    )
    oe_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the outlier stream's shuffling. Default: the training seed."},
    )
    oe_shuffle_buffer_size: int = field(
        default=10_000,
        metadata={"help": "Shuffle buffer of a streamed (IterableDataset) outlier corpus; bounds its memory."},
    )

    def __post_init__(self):
        super().__post_init__()
        # inf or NaN would make every loss NaN (and the logged train_loss 0) without an error.
        for name in ("oe_weight", "oe_energy_m_in", "oe_energy_m_out", "oe_energy_temperature"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"`{name}` must be a finite number, got {getattr(self, name)}.")
        if not self.oe_weight >= 0:
            raise ValueError(f"`oe_weight` must be >= 0, got {self.oe_weight}.")
        if self.oe_batch_size is not None and self.oe_batch_size < 1:
            raise ValueError(f"`oe_batch_size` must be a positive integer or None, got {self.oe_batch_size}.")
        if self.oe_loss not in OE_LOSSES:
            raise ValueError(f"`oe_loss` must be one of {list(OE_LOSSES)}, got {self.oe_loss!r}.")
        if self.oe_energy_m_out < self.oe_energy_m_in:
            raise ValueError(
                f"`oe_energy_m_out` ({self.oe_energy_m_out}) must be >= `oe_energy_m_in` ({self.oe_energy_m_in})."
            )
        if not self.oe_energy_temperature > 0:
            raise ValueError(f"`oe_energy_temperature` must be > 0, got {self.oe_energy_temperature}.")
        if not self.oe_margin >= 0:
            raise ValueError(f"`oe_margin` must be >= 0, got {self.oe_margin}.")
        if self.oe_max_length is not None and self.oe_max_length < 1:
            raise ValueError(f"`oe_max_length` must be a positive integer or None, got {self.oe_max_length}.")
        if self.oe_length_matching not in OE_LENGTH_MATCHING:
            raise ValueError(
                f"`oe_length_matching` must be one of {list(OE_LENGTH_MATCHING)}, got {self.oe_length_matching!r}."
            )
        if self.oe_length_bucket_size < 1:
            raise ValueError(f"`oe_length_bucket_size` must be >= 1, got {self.oe_length_bucket_size}.")
        if self.oe_shuffle_buffer_size < 1:
            raise ValueError(f"`oe_shuffle_buffer_size` must be >= 1, got {self.oe_shuffle_buffer_size}.")

    @property
    def oe_micro_batch_size(self) -> int:
        """Outliers drawn per device per micro-batch."""
        return self.oe_batch_size if self.oe_batch_size is not None else self.per_device_train_batch_size
