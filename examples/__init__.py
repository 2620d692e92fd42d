"""Worked examples: a dataset and a model of one's own, named by import path."""
