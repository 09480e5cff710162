"""Fixtures the plug-in's tests share."""

import pytest

from helpers.fake_engine import fake_engine_in


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    """The fake engine's interpreter (tests/helpers/fake_engine.py) in the test's folder."""
    return fake_engine_in(tmp_path, monkeypatch)
