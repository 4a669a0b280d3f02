"""Datasets: iHarmony4 on disk, RAHarmony4 reference lists, resize caches."""
