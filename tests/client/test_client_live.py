"""The SDK against a real ``hebb serve`` process: every method (sync and async), each exception
type, and retries through injected faults that never learn a sample twice."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from hebb_client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    InvalidInput,
    ModelInfo,
    NotFound,
    Unauthorized,
    Unavailable,
)
from model.config import make_config

PRESET = "mnist-shallow"


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist["train_images"][:600], mnist["train_labels"][:600], mnist["test_images"][:200], mnist["test_labels"][:200]


@pytest.fixture
def connect(live_server):
    """``connect(url=live server)`` → a sync client with the write key and a short backoff (fast retries)."""
    def make(url: str | None = None, **kwargs) -> Client:
        kwargs.setdefault("api_key", live_server.write_key)
        kwargs.setdefault("backoff", 0.01)
        return Client(url or live_server.url, **kwargs)
    return make


def test_every_sync_method_round_trips(live_server, model_name, digits, connect):
    X, y, X_test, y_test = digits
    with connect() as client:
        assert client.health() is True
        created = client.create_model(model_name, preset=PRESET, seed=3)
        assert isinstance(created, ModelInfo)
        assert (created.name, created.preset, created.samples_seen) == (model_name, PRESET, 0)
        assert created.input_shape == (28, 28, 1) and created.classes == 10
        assert created.config_digest == make_config(PRESET).digest()
        assert model_name in [m.name for m in client.list_models()]
        assert client.ready() is True

        model = client.model(model_name)
        y_partial = y[:300].copy()
        y_partial[::3] = -1  # a third unlabeled
        predictions = model.learn(X[:300], y_partial, batch_size=128)
        assert predictions.shape == (300,) and predictions.dtype == np.int64
        assert set(np.unique(predictions)) <= set(range(10))
        info = model.info()
        assert (info.samples_seen, info.labels_seen) == (300, 200)
        model.learn(X[300:], y[300:], progress=True)
        assert model.info().samples_seen == 600

        result = model.predict(X_test)
        assert result.labels.shape == (200,) and result.probabilities.shape == (200, 10)
        assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-4)
        assert np.array_equal(result.labels, result.probabilities.argmax(axis=1))
        assert np.mean(result.labels == y_test) > 0.5  # 600 samples are enough to beat chance by far
        assert len(set(result.prediction_ids)) == 200

        before = model.info()
        stored = model.get_prediction(result.prediction_ids[0])
        assert stored.prediction_id == result.prediction_ids[0]
        assert stored.label == result.labels[0] and stored.feedback is None
        model.feedback(result.prediction_ids[0], int(y_test[0]))
        assert model.get_prediction(result.prediction_ids[0]).feedback == int(y_test[0])
        after = model.info()
        assert after.samples_seen == before.samples_seen + 1 and after.state_digest != before.state_digest

        checkpoint = model.checkpoint()
        assert isinstance(checkpoint, dict)
        assert len(model.checkpoints()) >= 1

        client.delete_model(model_name)
        assert model_name not in [m.name for m in client.list_models()]
        with pytest.raises(NotFound):
            client.get_model(model_name)


def test_every_async_method_round_trips(live_server, model_name, digits, connect):
    X, y, X_test, y_test = digits

    async def main():
        async with AsyncClient(live_server.url, api_key=live_server.write_key, backoff=0.01) as client:
            assert await client.health() is True
            created = await client.create_model(model_name, preset=PRESET, seed=3)
            assert created.name == model_name
            assert model_name in [m.name for m in await client.list_models()]
            assert await client.ready() is True
            model = client.model(model_name)
            predictions = await model.learn(X[:256], y[:256], batch_size=100)
            assert predictions.shape == (256,)
            assert (await client.get_model(model_name)).samples_seen == 256
            result = await model.predict(X_test[:20])
            assert result.probabilities.shape == (20, 10)
            stored = await model.get_prediction(result.prediction_ids[3])
            assert stored.label == result.labels[3]
            await model.feedback(result.prediction_ids[3], int(y_test[3]))
            assert (await model.info()).samples_seen == 257
            assert isinstance(await model.checkpoint(), dict)
            assert len(await model.checkpoints()) >= 1
            # the async client runs concurrent calls on one connection pool
            many = await asyncio.gather(*(model.predict(X_test[i:i + 1]) for i in range(8)))
            with connect() as sync_client:  # concurrent single predictions agree with one batch
                assert [r.labels[0] for r in many] == sync_client.model(model_name).predict(X_test[:8]).labels.tolist()
            await client.delete_model(model_name)
            with pytest.raises(NotFound):
                await client.get_model(model_name)

    asyncio.run(main())


def test_sync_and_async_learning_reach_the_same_state(live_server, model_name, digits, connect):
    X, y, _, _ = digits
    with connect() as client:
        client.create_model(model_name + "-s", preset=PRESET, seed=5)
        sync_predictions = client.model(model_name + "-s").learn(X[:300], y[:300], batch_size=64)
        sync_digest = client.get_model(model_name + "-s").state_digest

    async def main():
        async with AsyncClient(live_server.url, api_key=live_server.write_key) as client:
            await client.create_model(model_name + "-a", preset=PRESET, seed=5)
            predictions = await client.model(model_name + "-a").learn(X[:300], y[:300], batch_size=200)
            return predictions, (await client.get_model(model_name + "-a")).state_digest

    async_predictions, async_digest = asyncio.run(main())
    assert np.array_equal(sync_predictions, async_predictions)
    assert sync_digest == async_digest


def test_each_error_type_against_the_real_server(live_server, model_name, digits, dead_url, connect):
    X, y, _, _ = digits
    with connect() as client:
        client.create_model(model_name, preset=PRESET)
        model = client.model(model_name)
        model.learn(X[:10], y[:10])
        digest = model.info().state_digest

        with pytest.raises(Conflict):
            client.create_model(model_name, preset=PRESET)
        with pytest.raises(InvalidInput, match="preset|config"):
            client.create_model(model_name + "-bad", preset="no-such-preset")
        with pytest.raises(InvalidInput, match=r"784|x_b64") as caught:
            model.learn(np.zeros((3, 100), np.uint8), [1, 2, 3])
        assert 400 <= caught.value.status_code < 500
        with pytest.raises(InvalidInput, match="label"):
            model.learn(X[:4], [1, 2, 3, 10])  # class 10 does not exist: the whole batch is refused
        with pytest.raises(NotFound):
            client.model(model_name + "-missing").learn(X[:2], y[:2])
        with pytest.raises(NotFound):
            model.get_prediction("no-such-prediction")
        with pytest.raises(NotFound):
            model.feedback("no-such-prediction", 1)
        assert model.info().state_digest == digest  # nothing rejected was applied

    with Client(live_server.url, api_key=None) as anonymous, pytest.raises(Unauthorized):
        anonymous.model(model_name).predict(X[:1])
    with Client(live_server.url, api_key="wrong-key") as stranger, pytest.raises(Unauthorized):
        stranger.list_models()
    with Client(live_server.url, api_key=live_server.read_key) as reader:
        assert reader.model(model_name).predict(X[:2]).labels.shape == (2,)  # read keys may predict
        with pytest.raises(Forbidden):
            reader.model(model_name).learn(X[:2], y[:2])
        with pytest.raises(Forbidden):
            reader.delete_model(model_name)
    with Client(dead_url, retries=2, backoff=0.01) as nowhere:
        with pytest.raises(Unavailable, match="gave up after 3 attempts"):
            nowhere.health()
    with connect() as client:
        assert client.get_model(model_name).state_digest == digest


def test_retries_through_faults_never_learn_a_sample_twice(live_server, fault_proxy, model_name, digits, connect):
    X, y, _, _ = digits
    X, y = X[:512], y[:512]
    with connect() as direct:
        direct.create_model(model_name + "-calm", preset=PRESET, seed=7)
        direct.create_model(model_name + "-stormy", preset=PRESET, seed=7)
        calm = direct.model(model_name + "-calm").learn(X, y, batch_size=64)

    # faults spread over the 8 batches (each batch gets at most 2 failed attempts)
    fault_proxy.script(
        "/samples",
        ("status", 503), ("pass",),            # batch 1: refused before learning, then sent again
        ("drop_after",), ("pass",),            # batch 2: learned, answer lost: the resend must not learn again
        ("drop_before",), ("pass",),           # batch 3: connection reset before the server saw it
        ("status", 429), ("status_after", 504), ("pass",),  # batch 4: throttled, then learned but gateway timeout
        ("pass",),                             # batch 5
        ("status_after", 502), ("pass",),      # batch 6: learned, bad gateway
        ("drop_after",), ("pass",),            # batch 7: learned, answer lost
    )
    with connect(fault_proxy.url) as flaky:
        stormy = flaky.model(model_name + "-stormy").learn(X, y, batch_size=64)
    assert not fault_proxy.faults, "every scripted fault was hit"
    # every batch reached the server once, and the 4 whose answer was lost a second time
    assert fault_proxy.forwarded[f"/v1/models/{model_name}-stormy/samples"] == 8 + 4

    with connect() as direct:
        calm_info = direct.get_model(model_name + "-calm")
        stormy_info = direct.get_model(model_name + "-stormy")
    assert stormy_info.samples_seen == calm_info.samples_seen == 512
    assert stormy_info.labels_seen == 512
    assert stormy_info.state_digest == calm_info.state_digest
    # batches learned by an attempt whose answer was lost have no predictions (-1); the rest match
    lost = np.zeros(512, bool)
    for batch in (2, 4, 6, 7):
        lost[(batch - 1) * 64:batch * 64] = True
    assert (stormy[lost] == -1).all()
    assert np.array_equal(stormy[~lost], calm[~lost])


def test_async_retries_through_faults_never_learn_a_sample_twice(live_server, fault_proxy, model_name, digits, connect):
    X, y, _, _ = digits
    X, y = X[:192], y[:192]
    with connect() as direct:
        direct.create_model(model_name + "-calm", preset=PRESET, seed=1)
        direct.create_model(model_name + "-stormy", preset=PRESET, seed=1)
        direct.model(model_name + "-calm").learn(X, y, batch_size=64)
        calm = direct.get_model(model_name + "-calm").state_digest

    fault_proxy.script("/samples", ("drop_after",), ("status", 503), ("pass",), ("status_after", 502))

    async def main():
        async with AsyncClient(fault_proxy.url, api_key=live_server.write_key, backoff=0.01) as flaky:
            await flaky.model(model_name + "-stormy").learn(X, y, batch_size=64)
            return (await flaky.get_model(model_name + "-stormy")).state_digest

    assert asyncio.run(main()) == calm
    assert not fault_proxy.faults


def test_retries_exhausted_raise_unavailable(live_server, fault_proxy, model_name, digits, connect):
    X, y, _, _ = digits
    with connect() as direct:
        direct.create_model(model_name, preset=PRESET)
    fault_proxy.script("/samples", *[("status", 503)] * 3)
    with connect(fault_proxy.url, retries=2) as flaky, pytest.raises(Unavailable) as caught:
        flaky.model(model_name).learn(X[:8], y[:8])
    assert caught.value.status_code == 503
    with connect() as direct:
        assert direct.get_model(model_name).samples_seen == 0


def test_feedback_is_not_blindly_resent_after_a_lost_answer(live_server, fault_proxy, model_name, digits, connect):
    X, y, _, _ = digits
    with connect() as direct:
        direct.create_model(model_name, preset=PRESET)
        prediction_id = direct.model(model_name).predict(X[:1]).prediction_ids[0]
    fault_proxy.script("/feedback", ("drop_after",))
    with connect(fault_proxy.url) as flaky, pytest.raises(Unavailable, match="not idempotent"):
        flaky.model(model_name).feedback(prediction_id, int(y[0]))
    with connect() as direct:
        assert direct.get_model(model_name).labels_seen == 1  # learned once, not resent
        assert direct.model(model_name).get_prediction(prediction_id).feedback == int(y[0])


def test_learning_rides_out_a_server_killed_and_restarted_mid_stream(live_server, server_factory, tmp_path,
                                                                      model_name, mnist, connect):
    """kill -9 while a batch is in flight, restart on the same port from the durable file store: the
    SDK retries through refused connections and 503s (recovering), and the result equals an
    undisturbed run."""
    X, y = mnist["train_images"][:1536], mnist["train_labels"][:1536]
    with connect() as direct:
        direct.create_model(model_name, preset=PRESET, seed=4)
        direct.model(model_name).learn(X, y, batch_size=64)
        calm = direct.get_model(model_name)

    durable = {"HEBB_STORE": f"file://{tmp_path / 'store'}"}
    server = server_factory(durable)
    with connect(server.url) as setup:
        setup.create_model(model_name, preset=PRESET, seed=4)
    outcome: dict = {}

    def stream() -> None:
        try:
            # a budget of about 30-40 s of retries: a restart on this shared 2-core machine can be slow
            with connect(server.url, retries=60, backoff=0.1, max_backoff=1.0) as client:
                outcome["predictions"] = client.model(model_name).learn(X, y, batch_size=64)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    streamer = threading.Thread(target=stream)
    streamer.start()
    with connect(server.url) as probe:
        while probe.get_model(model_name).samples_seen < 500 and streamer.is_alive():
            time.sleep(0.01)
    assert streamer.is_alive(), "the stream must still be running when the server dies"
    server.proc.kill()                 # SIGKILL: no graceful drain
    server.proc.wait()
    restarted = server_factory(durable, port=int(server.url.rsplit(":", 1)[1]))
    streamer.join(timeout=240)
    assert not streamer.is_alive()
    assert "error" not in outcome, f"{outcome.get('error')!r}\n{restarted.log()}"
    with connect(server.url) as client:
        stormy = client.get_model(model_name)
    assert stormy.samples_seen == calm.samples_seen == 1536
    assert stormy.state_digest == calm.state_digest


def test_delete_resent_after_a_lost_answer_succeeds(live_server, fault_proxy, model_name, connect):
    with connect() as direct:
        direct.create_model(model_name, preset=PRESET)
    fault_proxy.script(f"/v1/models/{model_name}", ("drop_after",))
    with connect(fault_proxy.url) as flaky:
        flaky.delete_model(model_name)      # deleted by the first attempt; the resend's 404 means done
        with pytest.raises(NotFound):
            flaky.delete_model(model_name)  # a plain 404 is still an error
    assert fault_proxy.applied == [("drop_after",)]
