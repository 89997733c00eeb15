"""A real Flask app per storage kind: @cached, @memoize, the {% cache %} tag and clear().

Every test counts how often the view or function really ran: a cache hit must not run it, a
delete, clear or timeout must make it run again.
"""

from __future__ import annotations

import pytest
from flask_caching import make_template_fragment_key

from tests.flask.apps import Site, make_site, needs_flask_caching_25
from tests.flask.conftest import Harness


@pytest.fixture
def site(per_storage: Harness) -> Site:
    return make_site(per_storage.config(), short_timeout=per_storage.ttl(30))


class TestCached:
    def test_a_hit_does_not_run_the_view(self, site: Site) -> None:
        assert site.get("/cached") == "cached 1"
        assert site.get("/cached") == "cached 1"
        assert site.calls["cached"] == 1
        with site.app.app_context():
            assert site.cache.get("view//cached") == "cached 1"

    @needs_flask_caching_25
    def test_delete_runs_it_again(self, site: Site) -> None:
        site.get("/cached")
        with site.app.app_context():
            assert site.cache.delete("view//cached")
        assert site.get("/cached") == "cached 2"
        with site.app.test_request_context("/cached"):
            site.cache.delete_cached(site.views["cached"], "/cached")
        assert site.get("/cached") == "cached 3"
        assert site.get("/cached") == "cached 3"

    def test_view_arguments_make_separate_entries(self, site: Site) -> None:
        assert site.get("/user/ann") == "user ann 1"
        assert site.get("/user/bob") == "user bob 2"
        assert site.get("/user/ann") == "user ann 1"
        assert site.calls["user"] == 2

    def test_timeout_expires(self, site: Site, per_storage: Harness) -> None:
        assert site.get("/short") == "short 1"
        assert site.get("/short") == "short 1"
        per_storage.pass_time(site.short_timeout + 1, lambda: site.get("/short") != "short 1")
        assert site.calls["short"] == 2
        assert site.get("/short") == "short 2"

    @needs_flask_caching_25
    def test_query_string_order_does_not_matter(self, site: Site) -> None:
        first = site.get("/qs?a=1&b=2")
        assert site.get("/qs?b=2&a=1") == first
        assert site.calls["qs"] == 1
        assert site.get("/qs?a=2&b=2") != first
        assert site.get("/qs") != first
        assert site.calls["qs"] == 3
        assert site.get("/qs?b=2&a=1") == first
        with site.app.test_request_context():
            key = site.views["qs"].make_cache_key(path="/qs", query_args="a=1&b=2")
            assert site.cache.delete(key)
        assert site.get("/qs?a=1&b=2") != first
        assert site.calls["qs"] == 4

    def test_unless_bypasses_the_cache(self, site: Site) -> None:
        assert site.get("/unless") == "unless 1"
        assert site.get("/unless?fresh=1") == "unless 2"
        assert site.get("/unless?fresh=1") == "unless 3"
        # the bypassed calls neither read nor wrote the cache
        assert site.get("/unless") == "unless 1"
        assert site.calls["unless"] == 3

    def test_response_filter_keeps_errors_out(self, site: Site) -> None:
        response = site.client.get("/filtered?status=500")
        assert response.status_code == 500
        response = site.client.get("/filtered?status=500")
        assert response.get_data(as_text=True) == "filtered 2"
        assert site.get("/filtered") == "filtered 3"
        # a 200 was cached, so even an error request is now answered from the cache
        assert site.get("/filtered?status=500") == "filtered 3"
        assert site.calls["filtered"] == 3

    def test_make_cache_key(self, site: Site) -> None:
        assert site.get("/custom?user=ann") == "custom ann 1"
        assert site.get("/custom?user=ann&x=1") == "custom ann 1"
        assert site.get("/custom?user=bob") == "custom bob 2"
        with site.app.app_context():
            assert site.cache.get("custom/ann") == "custom ann 1"
            assert site.cache.has("custom/bob")
            site.cache.delete("custom/ann")
        assert site.get("/custom?user=ann") == "custom ann 3"


class TestMemoize:
    def test_a_hit_does_not_run_the_function(self, site: Site) -> None:
        with site.app.test_request_context():
            assert site.add(1, 2) == (3, 1)
            assert site.add(1, 2) == (3, 1)
            assert site.add(b=2, a=1) == (3, 1)
            assert site.add(2, 2) == (4, 2)
            assert site.calls["add"] == 2

    def test_delete_memoized_with_arguments_drops_one_entry(self, site: Site) -> None:
        with site.app.test_request_context():
            site.add(1, 2)
            site.add(2, 2)
            site.cache.delete_memoized(site.add, 1, 2)
            assert site.add(1, 2) == (3, 3)
            assert site.add(2, 2) == (4, 2)

    def test_delete_memoized_drops_every_entry(self, site: Site) -> None:
        with site.app.test_request_context():
            site.add(1, 2)
            site.add(2, 2)
            site.cache.delete_memoized(site.add)
            assert site.add(1, 2) == (3, 3)
            assert site.add(2, 2) == (4, 4)
            assert site.add(2, 2) == (4, 4)

    def test_delete_memoized_verhash(self, site: Site) -> None:
        with site.app.test_request_context():
            site.add(1, 2)
            fname, version = site.cache._memoize_version(site.add)
            version_key = site.cache._memvname(fname)
            assert site.cache.get(version_key) == version
            site.cache.delete_memoized_verhash(site.add)
            assert site.cache.get(version_key) is None
            assert site.add(1, 2) == (3, 2)
            assert site.cache.get(version_key) not in (None, version)

    def test_instance_methods(self, site: Site) -> None:
        with site.app.test_request_context():
            ann, bob = site.Adder("ann"), site.Adder("bob")
            assert ann.plus(1) == (2, 1)
            assert ann.plus(1) == (2, 1)
            assert bob.plus(1) == (2, 1)
            site.cache.delete_memoized(ann.plus)
            assert ann.plus(1) == (2, 2)
            assert bob.plus(1) == (2, 1)
            site.cache.delete_memoized(site.Adder.plus)
            assert bob.plus(1) == (2, 2)

    def test_timeout_expires(self, site: Site, per_storage: Harness) -> None:
        with site.app.test_request_context():
            assert site.square(3) == (9, 1)
            assert site.square(3) == (9, 1)
            per_storage.pass_time(site.short_timeout + 1, lambda: site.square(3) != (9, 1))
            assert site.calls["square"] == 2


class TestTemplateFragments:
    def test_cache_tag(self, site: Site) -> None:
        assert site.get("/page?who=ann") == "<p>[1:ann]</p>"
        assert site.get("/page?who=ann") == "<p>[1:ann]</p>"
        assert site.get("/page?who=bob") == "<p>[2:bob]</p>"
        assert site.calls["tick"] == 2
        with site.app.app_context():
            key = make_template_fragment_key("frag", vary_on=["ann"])
            assert site.cache.get(key) == "[1:ann]"
            assert site.cache.delete(key)
        assert site.get("/page?who=ann") == "<p>[3:ann]</p>"

    def test_del_timeout_deletes_the_fragment(self, site: Site) -> None:
        site.get("/page?who=ann")
        # {% cache 'del' %} deletes the entry and renders the block fresh
        assert site.get("/page?who=ann&timeout=del") == "<p>[2:ann]</p>"
        assert site.get("/page?who=ann") == "<p>[3:ann]</p>"
        assert site.get("/page?who=ann") == "<p>[3:ann]</p>"

    def test_markup_is_not_escaped_on_a_hit(self, site: Site) -> None:
        # the fragment is Markup; if the cache turned it into a plain str, autoescaping would
        # show "&lt;b&gt;" on the second render
        assert site.get("/bold") == "<b>1</b>"
        assert site.get("/bold") == "<b>1</b>"

    def test_fragment_timeout(self, site: Site, per_storage: Harness) -> None:
        timeout = per_storage.ttl(30)
        assert site.get(f"/page?who=t&timeout={timeout}") == "<p>[1:t]</p>"
        assert site.get(f"/page?who=t&timeout={timeout}") == "<p>[1:t]</p>"
        per_storage.pass_time(
            timeout + 1, lambda: site.get(f"/page?who=t&timeout={timeout}") != "<p>[1:t]</p>"
        )
        assert site.calls["tick"] == 2


def test_clear_empties_views_memoized_and_fragments(site: Site) -> None:
    with site.app.test_request_context():
        site.get("/cached")
        site.get("/qs?a=1")
        site.get("/page?who=ann")
        site.add(1, 1)
        assert site.cache.clear() is True
        assert site.get("/cached") == "cached 2"
        assert site.get("/qs?a=1").endswith(" 2")
        assert site.get("/page?who=ann") == "<p>[2:ann]</p>"
        assert site.add(1, 1) == (2, 2)


def test_cache_none(per_storage: Harness) -> None:
    """memoize(cache_none=True) relies on has() telling a stored None from a miss."""
    site = make_site(per_storage.config())
    with site.app.test_request_context():

        @site.cache.memoize(cache_none=True)
        def nothing() -> None:
            site.calls["nothing"] += 1

        nothing()
        nothing()
        assert site.calls["nothing"] == 1
