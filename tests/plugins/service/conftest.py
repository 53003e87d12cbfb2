"""Service tests reuse the throw-away namespace fixture of the Linux descriptor tests."""

from tests.plugins.linux.conftest import make_netns

__all__ = ["make_netns"]
