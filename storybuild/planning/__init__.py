"""The planning layer: model → actions → graph; targets; the pure decision of what runs, with reasons."""
