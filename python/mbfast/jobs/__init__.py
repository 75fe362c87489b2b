"""Batch jobs over observation files: the local runner (local.py), the Dask runner (dask.py), both classifying one
hash shard (shards.py) at a time with local.classify_shard, and the checks of their output files (files.py)."""
