"""The fuzz suite's budget and shared strategies.

``FUZZ_EXAMPLES`` (default 200) is the number of inputs per property; CI runs the default, derandomized, so a run
is reproducible. ``scripts/fuzz.sh`` runs the same properties with a long budget and ``FUZZ_RANDOM=1`` (new inputs
on every run). Not ``ARGUS_*``: load_settings refuses unknown ARGUS_* variables.
"""

from __future__ import annotations

import os

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
RANDOM = os.environ.get("FUZZ_RANDOM", "") == "1"


def budget(examples: int = EXAMPLES) -> settings:
    return settings(
        max_examples=max(1, examples), deadline=None, derandomize=not RANDOM, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture],
    )


FUZZ = budget()

#: Everything MessagePack can carry (ints span int64..uint64), extension types and timestamps included.
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=40)
    | st.binary(max_size=40) | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12))
    | st.builds(msgpack.Timestamp, st.integers(-(2**34), 2**34), st.integers(0, 999_999_999))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.binary(max_size=6) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=10,
)
#: Values a lax validator might coerce: numeric strings (huge ones too), non-finite floats, extreme ints.
HOSTILE = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-(10**30), 10**30).map(str),
    st.integers(2**64, 10**40).map(str),  # lax int parsing: fits Python, not MessagePack
    st.sampled_from(["", "0", "-1", "1e400", "-1e400", "nan", "inf", "-inf", "true", "1.5", " 7 ", "0x10"]),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 2.0**64, -(2.0**63), 1e308]),
)
