"""The podmanager's conflist settings are validated, and ConflistPresence puts and removes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from plugins.podmanager.config import PodManagerConfig
from plugins.podmanager.conflist import ConflistError, ConflistPresence

LOG = logging.getLogger("test")


@pytest.mark.parametrize(("settings", "message"), [
    ({"staged_conflist": "lib/10-contiv.conflist"}, "staged_conflist must be an absolute path"),
    ({"staged_conflist": "/var/lib/contiv/cni/x.json"}, "must end in .conflist"),
    ({"staged_conflist": "/etc/cni/net.d/10-contiv.conflist"}, "is inside cni_conf_dir"),
    ({"staged_conflist": "/var/lib/contiv/cni/10-contiv.conflist", "cni_conf_dir": "net.d"},
     "cni_conf_dir must be an absolute path"),
    ({"remove_conf_on_stop": "sometimes"}, "remove_conf_on_stop"),
])
def test_bad_settings_are_named(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PodManagerConfig.model_validate(settings)


def test_defaults_leave_the_conf_dir_alone() -> None:
    config = PodManagerConfig()
    assert config.staged_conflist == "" and config.remove_conf_on_stop is True


def test_put_replaces_and_remove_takes_only_what_it_put(tmp_path: Path) -> None:
    staged = tmp_path / "lib" / "10-contiv.conflist"
    staged.parent.mkdir()
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    presence = ConflistPresence(staged, conf_dir, LOG)
    assert presence.put() is None and list(conf_dir.iterdir()) == []  # nothing staged
    assert presence.remove() is False
    staged.write_text(json.dumps({"cniVersion": "1.0.0", "name": "contiv", "plugins": []}))
    (conf_dir / "10-contiv.conflist").write_text("old")
    assert presence.put() == conf_dir / "10-contiv.conflist"
    assert (conf_dir / "10-contiv.conflist").read_bytes() == staged.read_bytes()
    assert oct((conf_dir / "10-contiv.conflist").stat().st_mode & 0o777) == "0o644"
    assert presence.remove() is True and list(conf_dir.iterdir()) == []
    assert presence.remove() is False


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not JSON"),
    ('{"name": "contiv"}', "has no 'plugins' list"),
])
def test_a_bad_staged_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    staged = tmp_path / "10-contiv.conflist"
    staged.write_text(content)
    (tmp_path / "net.d").mkdir()
    with pytest.raises(ConflistError, match=message):
        ConflistPresence(staged, tmp_path / "net.d", LOG).put()
    assert list((tmp_path / "net.d").iterdir()) == []


def test_a_missing_conf_dir_is_named(tmp_path: Path) -> None:
    staged = tmp_path / "10-contiv.conflist"
    staged.write_text('{"plugins": []}')
    with pytest.raises(ConflistError, match="is not a directory"):
        ConflistPresence(staged, tmp_path / "absent", LOG).put()
