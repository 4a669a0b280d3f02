"""retrieval/features"""
