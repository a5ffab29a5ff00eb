from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.netns import Netns, sweep

IS_ROOT = os.geteuid() == 0
HAVE_IP = shutil.which("ip") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "/tests/kernel/" in path:
            item.add_marker(pytest.mark.kernel)
        if "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        if ("/tests/kernel/" in path or "/tests/e2e/" in path) and not (IS_ROOT and HAVE_IP):
            item.add_marker(pytest.mark.skip(reason="needs root and iproute2"))


@pytest.fixture
def netns() -> Iterator[Callable[..., Netns]]:
    """Factory: ``ns = netns("tag")`` creates a namespace removed after the test."""
    made: list[Netns] = []

    def make(tag: str = "") -> Netns:
        ns = Netns(tag).__enter__()
        made.append(ns)
        return ns

    try:
        yield make
    finally:
        for ns in reversed(made):
            ns.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IS_ROOT and HAVE_IP:
        sweep()
