"""Lineage questions: `where` checking, backward, forward, and the store's catalog."""
