"""Benchmarks with their official protocols (JudgeBench, PPE, HealthBench, BiGGen), baselines and reports."""
