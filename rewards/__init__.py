"""Rubric scores as reward functions for TRL GRPOTrainer and other trainers (built on rrd and judges)."""
