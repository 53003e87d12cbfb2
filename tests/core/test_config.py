"""Config loading: every error class names file, key and reason; env overrides; the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apps.vswitch.main import SPEC
from core.app import load_config
from core.config import ConfigError
from core.http import HTTPConfig
from core.kvdb.plugin import KVDBConfig


def issues_of(data: dict[str, object], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(SPEC, data, environ or {})
    return [str(i) for i in info.value.issues]


def test_defaults_load() -> None:
    cfg, _ = load_config(SPEC, None, {})
    assert "kvdb" in cfg.enabled and isinstance(cfg.sections["kvdb"], KVDBConfig)


def test_unknown_plugin_name() -> None:
    [issue] = issues_of({"plugins": ["http", "nope"]})
    assert issue.startswith("<config>: plugins[1]: unknown plugin 'nope' (known: ")
    assert "health, http, " in issue


def test_unknown_key_names_the_key_path() -> None:
    assert issues_of({"plugins": ["http"], "http": {"port": 1, "prot": 2}}) == ["<config>: http.prot: unknown key"]
    tls = {"ca_file": "c", "cert_file": "a", "key_file": "k", "ca": "x"}
    assert issues_of({"plugins": ["kvdb"], "kvdb": {"tls": tls}}) == ["<config>: kvdb.tls.ca: unknown key"]
    # Mutual TLS needs all three files.
    assert issues_of({"plugins": ["kvdb"], "kvdb": {"tls": {"ca_file": "c"}}}) == [
        "<config>: kvdb.tls.cert_file: Field required", "<config>: kvdb.tls.key_file: Field required"]


def test_bad_value_gives_reason_and_value() -> None:
    [issue] = issues_of({"plugins": ["http"], "http": {"port": "many"}})
    assert issue.startswith("<config>: http.port: Input should be a valid integer") and "'many'" in issue


def test_unknown_section_and_missing_plugins_list() -> None:
    assert issues_of({"plugins": ["http"], "htp": {}}) == ["<config>: htp: unknown key: no plugin has this name"]
    assert issues_of({"http": {}}) == ["<config>: plugins: missing: list the plugins to enable"]


def test_every_error_is_reported_at_once() -> None:
    assert len(issues_of({"plugins": ["http", "kvdb", "x"], "http": {"port": -1},
                          "kvdb": {"backend": "redis"}})) == 3


def test_env_overrides_yaml_and_app_overrides_env() -> None:
    cfg, _ = load_config(SPEC, {"plugins": ["http", "kvdb"], "http": {"port": 1}},
                         {"CONTIV_HTTP__PORT": "2345", "CONTIV_KVDB__TLS__CA_FILE": "/ca.pem",
                          "CONTIV_KVDB__TLS__CERT_FILE": "/a.pem", "CONTIV_KVDB__TLS__KEY_FILE": "/a.key"})
    http = cfg.sections["http"]
    assert isinstance(http, HTTPConfig) and http.port == 2345
    kvdb = cfg.sections["kvdb"]
    assert isinstance(kvdb, KVDBConfig) and kvdb.tls is not None and str(kvdb.tls.ca_file) == "/ca.pem"
    cfg, _ = load_config(SPEC, {"plugins": ["kvdb"]},
                         {"CONTIV_KVDB__ENDPOINTS": "[a:1]", "ETCD_ENDPOINTS": "10.0.0.1:2379, 10.0.0.2:2379"})
    kvdb = cfg.sections["kvdb"]
    assert isinstance(kvdb, KVDBConfig)
    assert kvdb.endpoints == ["10.0.0.1:2379", "10.0.0.2:2379"] and kvdb.backend == "etcd"


def test_bad_env_override_is_reported() -> None:
    assert issues_of({"plugins": ["http"]}, {"CONTIV_HTTP__PORT": "x"})[0].startswith(
        "<config>: http.port: Input should be a valid integer")
    assert issues_of({"plugins": ["http"]}, {"CONTIV_NOPE__X": "1"}) == [
        "environment CONTIV_NOPE__X: nope: no such plugin"]


def test_a_needed_plugin_that_is_disabled_is_named(tmp_path: Path) -> None:
    from core.app import build_plugins

    cfg, third = load_config(SPEC, {"plugins": ["health"]}, {})
    with pytest.raises(ConfigError, match="plugin 'http' is needed by another enabled plugin"):
        build_plugins(SPEC, cfg, third)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apps.vswitch.main", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_cli_validate_config_exit_codes(tmp_path: Path) -> None:
    good = run_cli("--validate-config")
    assert good.returncode == 0 and "configuration OK" in good.stdout
    bad_file = tmp_path / "agent.yaml"
    bad_file.write_text("plugins: [http]\nhttp:\n  port: 99999\n  colour: red\n")
    bad = run_cli("--config", str(bad_file), "--validate-config")
    assert bad.returncode == 2
    assert f"{bad_file}: http.colour: unknown key" in bad.stderr
    assert f"{bad_file}: http.port: Input should be less than or equal to 65535" in bad.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("plugins: [http\n")
    out = run_cli("--config", str(broken), "--validate-config")
    assert out.returncode == 2 and "not valid YAML" in out.stderr
    missing = run_cli("--config", str(tmp_path / "none.yaml"), "--validate-config")
    assert missing.returncode == 2 and "cannot read file" in missing.stderr


def test_cli_version_and_list_plugins() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("contiv-agent ")
    out = run_cli("--list-plugins")
    assert out.returncode == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["kvdb"] == ["enabled", "builtin"]
