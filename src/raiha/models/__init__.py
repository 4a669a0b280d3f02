"""Harmonizer networks, their building blocks and the training loss."""
