"""The cluster tier: reconcile the tree under test on real clusters and run the
blocks the pages mark ``<!-- test: cluster NAME -->``.

Everything that changes a cluster goes through ``runner.Runner``, which asks
``guard.ContextGuard`` first; the command sequence comes from ``plan`` so that
``--plan`` prints exactly what a run executes. Providers (``providers/``) hide
how a cluster is made; kind is the first.
"""
