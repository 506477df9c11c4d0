"""Loading the plugin modules of SPANE_PLUGINS: what a newcomer's mistakes say."""

from __future__ import annotations

from pathlib import Path

import pytest
from spane_core.errors import PluginError
from spane_core.sdk import ExecutorRegistry, load_plugins


def test_a_plugin_module_not_found_says_where_it_must_be_without_a_traceback() -> None:
    with pytest.raises(PluginError, match=r"'walk_no_such_plugin' not found: .*PYTHONPATH=\.") as raised:
        load_plugins(["walk_no_such_plugin"], ExecutorRegistry(), entry_point_group="spane.walk.none")
    assert raised.value.__cause__ is None


def test_a_plugin_that_fails_on_import_keeps_its_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "walk_broken_plugin.py").write_text("import walk_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="'walk_broken_plugin' could not be imported") as raised:
        load_plugins(["walk_broken_plugin"], ExecutorRegistry(), entry_point_group="spane.walk.none")
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)  # the traceback into its code is worth reading
