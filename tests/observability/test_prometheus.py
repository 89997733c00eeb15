"""metrics=prometheus with the real prometheus_client: exact names, labels and values for a
scripted run of hits, misses, an error and an outage under fail_open."""

from __future__ import annotations

import pytest

from tests.servers.proc import Server
from tsot import ConfigurationError, Storage
from tsot.observers.prometheus import PrometheusListener

prometheus_client = pytest.importorskip("prometheus_client")
CollectorRegistry = prometheus_client.CollectorRegistry


def _value(registry: object, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.server
def test_hits_misses_errors_and_an_outage(redis_to_stop: Server) -> None:
    registry = CollectorRegistry()
    url = f"redis://127.0.0.1:{redis_to_stop.port}/0?metrics=prometheus&label=sessions"
    store = Storage.from_url(url, fail_open=True, prometheus_registry=registry, secret=None)
    assert _value(registry, "tsot_breaker_open", storage="sessions") == 0
    store.store("a", "v")
    assert store.load("a") == "v"  # hit
    assert store.load("b") is None  # miss
    store.store("n", "text")
    with pytest.raises(TypeError):
        store.incr("n")  # an error the server reports: raised, counted
    redis_to_stop.kill()
    assert store.load("a") is None  # the outage: the get fails, the breaker opens
    assert store.load("a") is None  # answered by the open breaker: not a get at all

    get = {"backend": "redis"}
    assert _value(registry, "django_cache_get_total", **get) == 3
    assert _value(registry, "django_cache_get_hits_total", **get) == 1
    assert _value(registry, "django_cache_get_misses_total", **get) == 1
    assert _value(registry, "django_cache_get_fail_total", **get) == 1
    sessions = {"storage": "sessions"}
    assert _value(registry, "tsot_operation_seconds_count", **sessions, operation="get") == 3
    assert _value(registry, "tsot_operation_seconds_count", **sessions, operation="set") == 2
    assert _value(registry, "tsot_cache_hits_total", **sessions, operation="get") == 1
    assert _value(registry, "tsot_cache_misses_total", **sessions, operation="get") == 1
    errors = "tsot_operation_errors_total"
    assert _value(registry, errors, **sessions, operation="incr", error="WrongType") == 1
    assert _value(registry, errors, **sessions, operation="get", error="BackendUnavailable") == 1
    assert _value(registry, "tsot_breaker_open", **sessions) == 1
    skipped = "tsot_fail_open_skipped_total"
    assert _value(registry, skipped, **sessions, operation="get", reason="outage") == 1
    assert _value(registry, skipped, **sessions, operation="get", reason="short_circuited") == 1
    stats = store.stats()
    assert stats["operations"]["get"]["calls"] == 3 and stats["operations"]["get"]["errors"] == 1
    assert stats["events"] == {
        "breaker:open": 1,
        "skip:outage": 1,
        "skip:short_circuited": 1,
    }


@pytest.mark.server
def test_the_breaker_gauge_closes_when_the_server_returns(redis_to_stop: Server) -> None:
    registry = CollectorRegistry()
    url = f"redis://127.0.0.1:{redis_to_stop.port}/0"
    store = Storage.from_url(
        url,
        fail_open=True,
        probe_interval=0,  # every call probes: no waiting for the interval
        metrics="prometheus",
        label="back",
        prometheus_registry=registry,
        secret=None,
    )
    redis_to_stop.kill()
    store.load("k")
    assert _value(registry, "tsot_breaker_open", storage="back") == 1
    redis_to_stop.start()
    store.store("k", 1)
    assert store.load("k") == 1
    assert _value(registry, "tsot_breaker_open", storage="back") == 0
    assert store.stats()["events"]["breaker:closed"] == 1


def test_many_storages_share_one_set_of_collectors() -> None:
    registry = CollectorRegistry()
    # what django-prometheus registers at import: reused, not registered twice
    prometheus_client.Counter(
        "django_cache_get_total", "Total get requests on cache", ["backend"], registry=registry
    )
    stores = [
        Storage.new_imc(metrics=["prometheus"], prometheus_registry=registry, label=f"s{i}")
        for i in range(3)
    ]
    for s in stores:
        s.load("x")
    assert _value(registry, "django_cache_get_total", backend="memory") == 3
    assert _value(registry, "django_cache_get_misses_total", backend="memory") == 3
    assert _value(registry, "tsot_operation_seconds_count", storage="s2", operation="get") == 1
    assert PrometheusListener.for_registry(registry) is PrometheusListener.for_registry(registry)


def test_a_bad_metrics_option_names_it() -> None:
    with pytest.raises(ConfigurationError, match=r"'metrics'.*statsd"):
        Storage.new_imc(metrics="statsd")
