"""Argus benchmarks: every stage and the whole pipeline against its limits, run by ``argus bench``.

Not part of the pass/fail test run (tests/bench/test_bench_quick.py only smoke-tests ``--quick``). See README.md.
"""
