"""The lesson 10 check: right, wrong and untouched answers, run for real on
two nodes and the check's own redis-server."""

from __future__ import annotations

import pytest
import socketio

from chatlab.cluster import local_redis
from chatlab.exercises import ExerciseFailed
from chatlab.exercises.scaling import check_node
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)
from exercise_support import waits_out_a_timeout  # noqa: F401 (fixture)
from redis_support import require_redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def installed() -> None:
    require_redis_server()
    yield
    assert local_redis.running_redis() == {}, "the check left its redis-server running"


def node(*, manager="redis", url=None, skip_sender=False, to_sender=False, twice=False):
    """A node maker, right unless told to make one mistake."""

    def make_node(redis_url):
        options = {}
        if manager == "redis":
            options["client_manager"] = socketio.AsyncRedisManager(url or redis_url)
        sio = socketio.AsyncServer(async_mode="aiohttp", **options)

        @sio.event
        async def message(sid, text):
            target = {"skip_sid": sid} if skip_sender else {"to": sid} if to_sender else {}
            for _ in range(2 if twice else 1):
                await sio.emit("message", text, **target)

        return sio

    return make_node


async def test_the_solution_passes(capsys):
    await assert_passes(check_node, load_solution("10-scaling-out.py").make_node, capsys)


async def test_the_untouched_stub_is_not_tried_yet(capsys, caplog):
    def make_node(redis_url):
        sio = socketio.AsyncServer(async_mode="aiohttp")  # one node only, for now

        @sio.event
        async def message(sid, text):
            raise NotImplementedError("send the text to every client, on every node")

        return sio

    await assert_not_attempted(check_node, make_node, "– not tried yet:", capsys, caplog)


async def test_a_stub_maker_is_not_tried_yet(capsys, caplog):
    def make_node(redis_url):
        raise NotImplementedError

    await assert_not_attempted(check_node, make_node, "– not tried yet:", capsys, caplog)


async def test_a_node_without_a_redis_manager_is_told_to_use_one():
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(node(manager=None))
    assert "node B, cannot hear anything sent on node A" in str(failed.value)
    assert "client_manager=socketio.AsyncRedisManager(redis_url)" in str(failed.value)
    assert failed.value.block().startswith("✗ not passed yet: the node that shares")


async def test_a_manager_on_another_redis_is_told_to_pass_the_url(waits_out_a_timeout):
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(node(url="redis://127.0.0.1:1/0"))
    assert "do not both listen on the Redis at the URL" in str(failed.value)


async def test_leaving_the_sender_out_is_reported():
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(node(skip_sender=True))
    assert "everyone else received it, but not Ann" in str(failed.value)
    assert "no `skip_sid`" in str(failed.value)


async def test_sending_to_the_sender_alone_is_reported():
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(node(to_sender=True))
    assert "Bob, Cy received nothing" in str(failed.value)
    assert "without `to=`" in str(failed.value)


async def test_emitting_twice_is_reported():
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(node(twice=True))
    assert "received it more than once" in str(failed.value)


async def test_one_server_for_both_nodes_is_reported():
    sio = node()("redis://127.0.0.1:1/0")
    with pytest.raises(ExerciseFailed) as failed:
        await check_node(lambda redis_url: sio)
    assert "already running" in str(failed.value)


async def test_a_maker_without_the_url_parameter_is_told_to_take_it():
    def make_node():
        return socketio.AsyncServer(async_mode="aiohttp")

    with pytest.raises(ExerciseFailed) as failed:
        await check_node(make_node)
    assert "`def make_node(redis_url):`" in str(failed.value)


async def test_without_redis_server_it_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setenv(local_redis.BINARY_VARIABLE, "/nonexistent/redis-server")
    await check_node(node())
    out = capsys.readouterr().out
    assert out.startswith("– not checked: redis-server is not installed here")
    assert "conda install -c conda-forge redis-server" in out
