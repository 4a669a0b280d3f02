"""Small helpers shared by every part of raiha (atomic I/O, logging, rank zero)."""
