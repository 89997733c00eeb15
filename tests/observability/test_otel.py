"""tracing=true and metrics=otel with the OpenTelemetry SDK's in-memory exporters: exact span
names, attributes, parents and metric points."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.servers.proc import Server
from tsot import AsyncStorage, BackendUnavailable, Storage

pytest.importorskip("opentelemetry.sdk")


def _spans(otel: dict[str, Any]) -> list[Any]:
    return list(otel["spans"].get_finished_spans())


@pytest.mark.server
def test_one_span_per_operation(otel: dict[str, Any], redis_to_stop: Server) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    port = redis_to_stop.port
    store = Storage.from_url(f"redis://127.0.0.1:{port}/0", tracing=True, namespace="tr")
    with otel["tracer"].start_as_current_span("view") as view:
        store.store_raw("a", b"12345")
        store.load("a")
        store.load("nope")
        store.load_many(["a", "nope"])
    spans = [s for s in _spans(otel) if s.name != "view"]
    assert [s.name for s in spans] == ["set", "get", "get", "get_many"]
    common = {
        "db.system.name": "redis",
        "server.address": "127.0.0.1",
        "server.port": port,
        "db.namespace": "tr",
        "tsot.storage": f"redis://127.0.0.1:{port}/0",
    }
    # str/bytes are unsigned here (no secret): "b" tag + 5 bytes
    assert [dict(s.attributes) for s in spans] == [
        {**common, "db.operation.name": "set", "cache.item_size": 6},
        {**common, "db.operation.name": "get", "cache.hit": True, "cache.item_size": 6},
        {**common, "db.operation.name": "get", "cache.hit": False},
        {
            **common,
            "db.operation.name": "get_many",
            "db.operation.batch.size": 2,
            "tsot.hits": 1,
            "cache.item_size": 6,
        },
    ]
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == view.get_span_context().span_id
        assert span.start_time <= span.end_time

    otel["spans"].clear()
    redis_to_stop.kill()
    with pytest.raises(BackendUnavailable):
        store.load("a")
    (failed,) = _spans(otel)
    assert failed.name == "get" and failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "BackendUnavailable"
    assert [e.name for e in failed.events] == ["exception"]


@pytest.mark.server
@pytest.mark.parametrize("server", ["redis_url", "memcached_url"])
def test_each_task_gets_its_own_span_over_the_pipelined_connection(
    otel: dict[str, Any], server: str, request: pytest.FixtureRequest
) -> None:
    tracer = otel["tracer"]
    url = str(request.getfixturevalue(server))

    async def main() -> dict[str, int]:
        store = AsyncStorage.from_url(url, tracing=True, namespace="pipe", secret=None)
        parents: dict[str, int] = {}

        async def task(name: str) -> None:
            with tracer.start_as_current_span(name) as span:
                parents[name] = span.get_span_context().span_id
                await asyncio.sleep(0)  # every task's get is queued in the same loop turn
                await store.load(name)

        await asyncio.gather(*(task(f"t{i}") for i in range(5)))
        await store.close()
        return parents

    parents = asyncio.run(main())
    by_id = {s.context.span_id: s for s in _spans(otel)}
    gets = [s for s in by_id.values() if s.name == "get"]
    assert len(gets) == 5
    assert sorted(by_id[s.parent.span_id].name for s in gets) == sorted(parents)
    for get in gets:
        assert by_id[get.parent.span_id].context.span_id == parents[by_id[get.parent.span_id].name]


def test_other_event_kinds_become_events_of_the_current_span(otel: dict[str, Any]) -> None:
    store = Storage.new_imc(tracing=True)
    with otel["tracer"].start_as_current_span("view"):
        store._hub.notify("stampede", "get", waited=3)  # type: ignore[union-attr]  # later kinds
    (view,) = [s for s in _spans(otel) if s.name == "view"]
    assert [(e.name, dict(e.attributes)) for e in view.events] == [
        ("tsot.stampede", {"waited": "3"})
    ]


def test_metrics_points(otel: dict[str, Any]) -> None:
    store = Storage.new_imc(metrics="otel", label="otel-points")
    store.store("k", 1)
    store.load("k")
    store.load("gone")
    points: dict[str, list[Any]] = {}
    data = otel["reader"].get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            if sm.scope.name == "tsot":
                for metric in sm.metrics:
                    points[metric.name] = [
                        p
                        for p in metric.data.data_points
                        if p.attributes.get("tsot.storage") == "otel-points"
                    ]
    durations = {
        p.attributes["db.operation.name"]: p.count for p in points["db.client.operation.duration"]
    }
    assert durations == {"set": 1, "get": 2}
    assert sum(p.value for p in points["tsot.cache.hits"]) == 1
    assert sum(p.value for p in points["tsot.cache.misses"]) == 1
    (hit,) = points["tsot.cache.hits"]
    assert hit.attributes == {
        "db.system.name": "memory",
        "db.operation.name": "get",
        "tsot.storage": "otel-points",
    }
