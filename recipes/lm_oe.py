"""Outlier Exposure for a causal language model (the paper's LM experiment): baseline LM, OE fine-tuning, evaluation.

    python recipes/lm_oe.py                                   # small GPT-2 from a config on SST-2 text, a few minutes
    python recipes/lm_oe.py --model gpt2 --dataset ptb_text_only --output_dir outputs/ptb_gpt2   # real Hub
    accelerate launch recipes/lm_oe.py --max_train_samples 2000

Every option: `python recipes/lm_oe.py --help` (recipe options, then `OETrainingArguments`); docs/language_models.md.
"""

from oe_text.lm_recipe import main


if __name__ == "__main__":
    main()
