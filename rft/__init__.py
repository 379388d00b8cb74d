"""GRPO training with rubric rewards: configs, prompt-set preparation, rubric precompute, reward curves."""
