"""retrieval/store"""
