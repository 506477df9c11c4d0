"""Which SPANE_REDIS_URL names a Redis Cluster, and the URL redis-py's cluster client gets for it."""

from __future__ import annotations

import pytest
from spane_core.errors import ConfigurationError
from spane_core.store.cluster import plain_url


def test_a_cluster_scheme_becomes_the_plain_one_with_credentials_and_options_kept() -> None:
    assert plain_url("redis+cluster://10.0.0.1:6379") == "redis://10.0.0.1:6379"
    assert plain_url("rediss+cluster://user:secret@cfg.example:6380/0?ssl_cert_reqs=none") == (
        "rediss://user:secret@cfg.example:6380?ssl_cert_reqs=none"
    )


def test_a_plain_url_names_no_cluster() -> None:
    assert plain_url("redis://localhost:6379/0") is None
    assert plain_url("rediss://localhost:6380") is None


def test_a_cluster_url_naming_a_database_other_than_0_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="database 0"):
        plain_url("redis+cluster://localhost:6379/3")
