"""Shared fixtures. Every test session gets its own DDS domain on loopback."""
import pathlib

import pytest

from exo_common.testing import RosHarness, isolate_ros_graph

isolate_ros_graph()

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'


@pytest.fixture
def ros():
    """A RosHarness (private rclpy context, probe node, background spinning)."""
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope='session')
def shared_data() -> pathlib.Path:
    """../shared/data (public reference data); tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'reference data not found at {SHARED_DATA}')
    return SHARED_DATA
