"""The builder's fake timer (tests/builder/conftest.py) for plugin selection tests."""
from tests.builder.conftest import fake_timer  # noqa: F401 - a fixture
