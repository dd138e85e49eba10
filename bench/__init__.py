"""Benchmarks of seqtune: overhead, parallel scaling, pruning, samplers, server latency.

Run them all with `make bench` (about 50 minutes on 2 cores) or
`python -m bench.run_all --quick` (a few minutes). Each benchmark writes
`results/<name>.json` and `results/<name>.md`; `RESULTS.md` gathers the latest
tables with the machine they ran on.
"""
