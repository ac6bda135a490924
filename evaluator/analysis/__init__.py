"""Reads result folders, never a model: bootstrap intervals, the comparison of two folders, the report
and its plots.

Imports only evaluator.core; never torch or transformers."""
