"""RemovedKeys: what a renderer stopped producing, until its caller takes it."""

from __future__ import annotations

from plugins.kvscheduler.removed import RemovedKeys


def test_keys_gone_and_back_before_the_take_are_not_removed() -> None:
    removed = RemovedKeys()
    removed.gone(["a", "b"])
    removed.back(["b"])
    removed.replaced(["c", "d"], {"d", "e"})
    assert removed.take() == ["a", "c"]
    assert removed.take() == []
