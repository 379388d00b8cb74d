"""Tests for the eval package: benchmark loaders and protocol metrics."""
