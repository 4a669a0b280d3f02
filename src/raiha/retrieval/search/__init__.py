"""retrieval/search"""
