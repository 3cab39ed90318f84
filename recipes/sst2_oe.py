"""Outlier Exposure on SST-2 (SetFit/sst2, binary sentiment).

Trains the baseline classifier, fine-tunes it with Outlier Exposure on WikiText-2 sentences, evaluates both on the
paper's OOD presets and prints them side by side; saves reports and the calibrated detector in --output_dir.

Usage:
    accelerate launch recipes/sst2_oe.py                                # all-MiniLM-L6-v2 (default)
    accelerate launch recipes/sst2_oe.py --model gru                    # the paper's GRU baseline
    accelerate launch recipes/sst2_oe.py --model lstm --oe_mode scratch
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml recipes/sst2_oe.py --model gru
    python recipes/sst2_oe.py --help   # every option: RecipeArguments + OETrainingArguments
"""

from oe_text.recipe import main


if __name__ == "__main__":
    main(dataset="sst2")
