"""References for the retrieval-augmented setting: augmented crops, sampling, width concatenation."""
