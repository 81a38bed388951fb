"""Argus benchmarks: every stage and the whole pipeline against its limits, run by ``argus bench``.

Not part of the pass/fail test run (tests/bench/test_bench_quick.py only smoke-tests ``--quick``). See README.md.
"""

import os

# numpy's own BLAS on one thread, like FAISS (ARGUS_FAISS_THREADS=1) and OpenCV here: figures are per core. Must be
# set before numpy is first imported, which is why it lives in the package's __init__.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
