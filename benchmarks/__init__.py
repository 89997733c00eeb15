"""tsot benchmarks: every storage kind against its raw client and its peers (``scripts/bench``)."""
