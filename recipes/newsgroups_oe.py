"""Outlier Exposure on 20 Newsgroups (SetFit/20_newsgroups, 20 topics).

Trains the baseline classifier, fine-tunes it with Outlier Exposure on WikiText-2 sentences, evaluates both on the
paper's OOD presets and prints them side by side; saves reports and the calibrated detector in --output_dir.

Usage:
    accelerate launch recipes/newsgroups_oe.py                                # all-MiniLM-L6-v2 (default)
    accelerate launch recipes/newsgroups_oe.py --model gru                    # the paper's GRU baseline
    accelerate launch recipes/newsgroups_oe.py --model lstm --oe_mode scratch
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml recipes/newsgroups_oe.py --model gru
    python recipes/newsgroups_oe.py --help   # every option: RecipeArguments + OETrainingArguments
"""

from oe_text.recipe import main


if __name__ == "__main__":
    main(dataset="20ng")
