"""Identifier rules, named once: what a slug is and how event and alert ids are derived.

Ids are deterministic on purpose. The bus delivers at least once, so a redelivered frame, face or match must map
onto the rows it wrote the first time (every store write is an upsert keyed by these ids); a random id would turn
each redelivery into a duplicate sighting or a second alert for the same person.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

#: Camera ids, person ids and watch-list names: they key bus topics and store rows, so they must be stable,
#: URL- and file-name-safe, and short.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SLUG_RE = re.compile(SLUG_PATTERN)
SLUG_RULE = "a slug (lowercase letters, digits, '-' or '_', 1-64 chars, starting with a letter or digit)"


def is_slug(value: object) -> bool:
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None  # match() + "$" accepts "x\n"


#: Person ids as the records systems that issue them write them (``P-100``, ``case/2026:17``): letters of either
#: case, digits and ``-_./:``, starting with a letter or digit, up to 128 characters. They are escaped wherever they
#: become part of something else (:func:`person_key` for file names and URLs) and never used as metric labels.
PERSON_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$"
PERSON_ID_RE = re.compile(PERSON_ID_PATTERN)
PERSON_ID_RULE = ("a person id (letters, digits and '-', '_', '.', '/', ':', 1-128 chars, starting with a letter "
                  "or digit)")


def is_person_id(value: object) -> bool:
    return isinstance(value, str) and PERSON_ID_RE.fullmatch(value) is not None


def person_key(person_id: str) -> str:
    """A person id made safe as one file name or one URL path segment: every character but letters, digits,
    ``-`` and ``_`` percent-escaped (``P-1/a.b`` → ``P-1%2Fa%2Eb``), so ``a/../b`` can never climb a directory and
    the mapping stays one-to-one (case is kept; ids differing only in case are different people)."""
    return quote(person_id, safe="").replace(".", "%2E")


def event_id(camera_id: str, seq: int, face_index: int) -> str:
    """One sighting: the same face in a replayed frame maps onto the same stored event."""
    return f"{camera_id}:{seq}:{face_index}"


def alert_id(camera_id: str, track_id: str) -> str:
    """One alert per track (a person's visit to a camera): its revisions and any replay rewrite the same alert."""
    return hashlib.sha256(f"{camera_id}|{track_id}".encode()).hexdigest()[:24]
