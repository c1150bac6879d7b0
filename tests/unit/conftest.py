"""Fixtures shared by the unit tests of the figure modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from pipeline import plots


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure the plots module saves during a test (still inspectable once closed)."""
    saved: list[Figure] = []
    save = plots.save

    def keep(fig: Figure, path: str | Path) -> Path:
        saved.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "save", keep)
    return saved
