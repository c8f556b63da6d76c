"""The store layer: every SQL statement the registry runs, behind plain async functions.

One module per concern: ``tasks`` (registration, events), and the others beside it.
"""
