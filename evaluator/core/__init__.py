"""Torch-free: data readers, row scoring (a registry of row metrics), the MMLU gate, the leaderboard, MIA
statistics, the results file, result-folder tables, machine identity, errors and atomic writes.

Imports nothing from the other rooms (model, analysis, harness, cli) and never torch or transformers."""
