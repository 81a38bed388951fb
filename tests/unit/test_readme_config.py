"""The README's configuration table is what a new operator reads: it must name every setting and no stale one."""

from __future__ import annotations

import re
from pathlib import Path

from argus.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_variables() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(ARGUS_[A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def test_readme_configuration_table_lists_every_setting_and_nothing_else() -> None:
    settings = {f"ARGUS_{name.upper()}" for name in Settings.model_fields}
    listed = _table_variables()
    assert settings - listed == set(), f"settings missing from the README table: {sorted(settings - listed)}"
    assert listed - settings == set(), f"README lists variables no setting reads: {sorted(listed - settings)}"


def test_readme_permission_matrix_is_the_one_the_code_enforces() -> None:
    from argus.api.auth import permission_matrix_markdown

    assert permission_matrix_markdown() in README.read_text(encoding="utf-8"), (
        "README's permission matrix differs from argus.api.auth.ROLE_PERMISSIONS: paste permission_matrix_markdown()")
