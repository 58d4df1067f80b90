"""The HTTP API: contract, every error code, auth, metrics, the page (in-process, extractive pipeline)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from conftest import MEETING_B, PLAIN_TEXT  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.models import MAX_QUERIES, SummarizeResponse  # noqa: E402


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.load("extractive-bm25")


def client_for(pipeline: Pipeline, **config) -> TestClient:
    return TestClient(create_app(pipeline, ServerConfig(**config)))


@pytest.fixture
def client(pipeline):
    with client_for(pipeline) as c:
        yield c


def test_summarize_returns_answers_with_evidence_offsets_into_the_document(client):
    body = {"document": PLAIN_TEXT, "queries": ["What happened to the bridge budget?", "When does the reading room close?"],
            "options": {"include_document": True}}
    r = client.post("/v1/summarize", json=body)
    assert r.status_code == 200, r.text
    data = SummarizeResponse.model_validate(r.json())
    assert [a.query for a in data.answers] == body["queries"]
    assert data.document == PLAIN_TEXT
    bridge = data.answers[0]
    assert "bridge" in bridge.summary
    for answer in data.answers:
        assert answer.evidence and answer.batch_size >= 1
        assert {"segment_ms", "score_ms", "write_ms", "total_ms", "queue_ms"} <= answer.timings.keys()
        starts = [e.start for e in answer.evidence]
        assert starts == sorted(starts)  # document order
        for e in answer.evidence:
            assert PLAIN_TEXT[e.start : e.end] == e.text


def test_segments_and_qmsum_documents(client):
    r = client.post("/v1/summarize", json={"segments": ["Cats purr.", {"speaker": "Bob", "text": "Dogs bark loudly."}],
                                           "queries": ["Which animal barks?"], "options": {"include_document": True}})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["document"] == "Cats purr.\nBob: Dogs bark loudly."
    assert any(e["text"] == "Bob: Dogs bark loudly." for e in data["answers"][0]["evidence"])
    r = client.post("/v1/summarize", json={"document": json.dumps(MEETING_B), "format": "qmsum",
                                           "queries": ["Why was rubber chosen?"], "id": "meeting_b"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "meeting_b"
    assert "{vocalsound}" not in r.json()["answers"][0]["summary"]  # the QMSum reader cleaned the markup


def test_document_endpoint_gives_text_units_and_carried_queries(client):
    r = client.post("/v1/document", json={"document": json.dumps(MEETING_B), "format": "qmsum"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["queries"][0] == "Summarize the whole meeting."
    assert len(data["queries"]) == 3
    assert len(data["segments"]) == len(MEETING_B["meeting_transcripts"])
    first = data["segments"][0]
    assert data["text"][first["start"] : first["end"]].startswith("Project Manager: Okay")
    jsonl = json.dumps({"document": "Alpha.\n\nBeta.", "query": "What comes first?"}) + "\n"
    r = client.post("/v1/document", json={"document": jsonl, "format": "jsonl"})
    assert r.json()["queries"] == ["What comes first?"] and r.json()["text"] == "Alpha.\n\nBeta."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"document": "Some text."}, "queries: Field required"),
        ({"queries": ["q"]}, "give exactly one of 'document'"),
        ({"document": "x", "segments": ["y"], "queries": ["q"]}, "give exactly one of 'document'"),
        ({"document": "x", "queries": []}, "queries: List should have at least 1 item"),
        ({"document": "x", "queries": ["  "]}, "queries[0] is empty"),
        ({"document": "x", "queries": ["q"] * (MAX_QUERIES + 1)}, f"at most {MAX_QUERIES} items"),
        ({"document": "x", "queries": ["q"], "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"document": "   ", "queries": ["q"]}, "the document is empty"),
        ({"document": "{oops", "format": "qmsum", "queries": ["q"]}, "malformed JSON"),
        ({"document": "[1]", "format": "qmsum", "queries": ["q"]}, "must be a JSON object"),
        ({"document": '{"a": 1}', "format": "qmsum", "queries": ["q"]}, "not a QMSum meeting"),
        ({"document": "x", "format": "pdf", "queries": ["q"]}, "format: Input should be"),
        ({"document": "x", "queries": ["q"], "options": {"timeout_s": -1}}, "options.timeout_s"),
    ],
)
def test_malformed_requests_get_422_with_one_clear_line(client, body, message):
    r = client.post("/v1/summarize", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert message in detail


def test_invalid_json_body_gets_422(client):
    r = client.post("/v1/summarize", content=b'{"document": "x",', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("the body is not valid JSON")


def test_oversized_body_gets_413_by_length_and_while_streaming(pipeline):
    with client_for(pipeline, max_body_bytes=1000) as client:
        big = {"document": "word " * 400, "queries": ["q"]}
        r = client.post("/v1/summarize", json=big)
        assert r.status_code == 413 and "limit" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit must hold while the body streams in
            for _ in range(10):
                yield b"x" * 200

        r = client.post("/v1/summarize", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert client.post("/v1/summarize", json={"document": "Fine.", "queries": ["q"]}).status_code == 200


def test_api_key_guards_v1_and_metrics_but_not_health_or_page(pipeline):
    with client_for(pipeline, api_key="s3cret") as client:
        body = {"document": "Text here.", "queries": ["q"]}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = client.post("/v1/summarize", json=body, headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/metrics").status_code == 401
        assert client.post("/v1/document", json={"document": "x"}).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/summarize", json=body, headers=ok).status_code == 200
        assert client.get("/metrics", headers=ok).status_code == 200
        assert client.get("/healthz").json()["auth"] is True
        assert client.get("/").status_code == 200


def test_health_metrics_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok", "pipeline": "extractive-bm25", "mode": "batched",
                                             "auth": False}
    client.post("/v1/summarize", json={"document": PLAIN_TEXT, "queries": ["bridge?", "library?"]})
    client.post("/v1/summarize", json={"queries": []})
    text = client.get("/metrics").text
    assert 'qfsum_requests_total{route="/v1/summarize",status="200"} 1.0' in text
    assert 'qfsum_requests_total{route="/v1/summarize",status="422"} 1.0' in text
    assert "qfsum_batch_size_sum 2.0" in text  # the request's two queries ran as one batch
    assert "qfsum_queue_depth 0.0" in text
    assert "qfsum_request_seconds_bucket" in text
    schema = client.get("/openapi.json").json()
    summarize = schema["paths"]["/v1/summarize"]["post"]
    assert {"200", "401", "413", "422", "429", "504"} <= summarize["responses"].keys()
    assert "SummarizeRequest" in schema["components"]["schemas"]


def test_web_page_and_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert client.get("/nothing-here").status_code == 404


def test_a_query_the_writer_rejects_fails_alone(tiny_causal_dir):
    from qfsum.writers import WriterConfig
    from qfsum.pipeline import PipelineConfig
    from qfsum.retrieval import ScorerConfig

    config = PipelineConfig(scorer=ScorerConfig(kind="bm25"),
                            writer=WriterConfig(kind="generative", model=str(tiny_causal_dir), input_tokens=160,
                                                max_new_tokens=4))
    with client_for(Pipeline(config)) as client:
        long_query = "why " * 200  # leaves no room in a 160-token budget: a QfsumError from the writer
        r = client.post("/v1/summarize", json={"document": PLAIN_TEXT, "queries": [long_query]})
        assert r.status_code == 422 and "too long" in r.json()["detail"]
        r = client.post("/v1/summarize", json={"document": PLAIN_TEXT, "queries": ["bridge?"]})
        assert r.status_code == 200


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_segment = st.text(max_size=40) | st.fixed_dictionaries({"text": st.text(max_size=40)},
                                                        optional={"speaker": st.text(max_size=8) | st.none()})
_bodies = st.fixed_dictionaries({}, optional={
    "document": st.text(max_size=300) | _json,
    "segments": st.lists(_segment, max_size=4) | _json,
    "queries": st.lists(st.text(max_size=40), max_size=3) | _json,
    "format": st.sampled_from(["text", "markdown", "jsonl", "qmsum"]) | _json,
    "id": st.text(max_size=10) | _json,
    "options": st.fixed_dictionaries({"include_document": st.just(True)},
                                     optional={"timeout_s": st.floats(min_value=1, max_value=60)}) | _json,
})


# derandomize: the same 150 bodies on every run, so CI never fails by chance
@hypothesis.settings(max_examples=150, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(body=_bodies)
@hypothesis.example(body={"queries": [], "options": {"\n": None}})  # a key with a newline once broke the one-line 422
def test_any_body_gets_a_valid_answer_or_one_clear_422_never_a_500(client, body):
    r = client.post("/v1/summarize", json=body)
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if r.status_code == 422:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail
        return
    data = SummarizeResponse.model_validate(r.json())
    assert len(data.answers) == len(body["queries"])
    document = data.document if data.document is not None else ""
    for answer in data.answers:
        for e in answer.evidence:  # offsets always index the document text the server read
            assert document[e.start : e.end] == e.text or data.document is None


def test_serve_cli_refuses_a_busy_port_in_one_line_before_loading(capsys):
    import socket

    from conftest import assert_one_error_line, cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = cli(capsys, "serve", "--pipeline", "no-such-pipeline", "--port", port)
    assert "cannot listen on 127.0.0.1" in assert_one_error_line(code, err)


@pytest.mark.parametrize(("args", "message"), [
    (["--max-batch-size", "0"], "--max-batch-size must be >= 1"),
    (["--deadline", "0"], "--deadline must be a finite number > 0"),
    (["--deadline", "nan"], "--deadline must be a finite number"),
    (["--max-body-mb", "nan"], "--max-body-mb must be a finite number"),
    (["--max-body-mb", "inf"], "--max-body-mb must be a finite number"),
    (["--max-wait-ms", "inf"], "--max-wait-ms must be a finite number"),
    (["--grace-s", "-1"], "--grace-s must be a finite number > 0"),
    (["--max-inflight-mb", "nan"], "--max-inflight-mb must be a finite number"),
    (["--max-inflight-mb", "4"], "--max-inflight-mb must be at least --max-body-mb"),
    (["--max-segments", "0"], "--max-segments must be >= 1"),
    (["--max-document-chars", "0"], "--max-document-chars must be >= 1"),
    (["--port", "70000"], "--port must be 0-65535"),
])
def test_serve_cli_bad_flags_are_one_line_errors(capsys, args, message):
    from conftest import assert_one_error_line, cli

    code, _, err = cli(capsys, "serve", *args)
    assert message in assert_one_error_line(code, err)


def test_serve_flags_give_the_server_config(monkeypatch):
    import argparse

    from qfsum.cli.serve import API_KEY_ENV, add_arguments, server_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    args = parser.parse_args(["--max-segments", "100", "--max-document-chars", "5000", "--grace-s", "3",
                              "--max-inflight-mb", "16"])
    config = server_config(args)
    assert (config.max_segments, config.max_document_chars, config.grace_s) == (100, 5000, 3.0)
    assert config.max_inflight_bytes == 16 * 2**20 and args.proxy_headers is False
    assert config.allowed_hosts == ("localhost", "127.0.0.1", "[::1]", "127.0.0.1")  # keyless loopback: guarded
    assert server_config(parser.parse_args(["--host", "0.0.0.0"])).allowed_hosts is None
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    assert server_config(parser.parse_args([])).allowed_hosts is None  # a key guards the server instead
