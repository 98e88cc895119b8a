"""``flock-es export RUN --otlp``: a real OTLP/HTTP receiver on loopback gets the
span tree of the news run, decoded with opentelemetry-proto."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, run_cli

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra (part of the test extra) is not installed",
)


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: decodes each ExportTraceServiceRequest."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out: list[tuple[dict[str, Any], Any]] = []
        for _, req in self.requests:
            for rs in req.resource_spans:
                res = {a.key: value(a.value) for a in rs.resource.attributes}
                out.extend((res, s) for ss in rs.scope_spans for s in ss.spans)
        return out


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = trace_service.ExportTraceServiceRequest()
        req.ParseFromString(body)
        self.server.requests.append((self.path, req))
        reply = trace_service.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


def attrs(span: Any) -> dict[str, Any]:
    return {a.key: value(a.value) for a in span.attributes}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def news_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("otel")
    db = tmp / "news.db"
    out = run_cli(["run", EXAMPLES / "news.py", "--db", db, "-q"], cwd=tmp)
    assert out.returncode == 0, out.stderr
    return db


def test_the_news_run_arrives_as_one_trace_with_the_right_tree(
    news_db: Path, receiver: Receiver
) -> None:
    out = run_cli(["export", "latest", "--db", news_db, "--otlp", receiver.url])
    assert out.returncode == 0, out.stderr
    assert [path for path, _ in receiver.requests] == ["/v1/traces"]
    spans = receiver.spans()
    assert {res["service.name"] for res, _ in spans} == {"flock-es"}
    runs = [s for _, s in spans if s.name == "flock-es run"]
    tasks = [s for _, s in spans if attrs(s).get("gen_ai.operation.name") == "invoke_agent"]
    calls = [s for _, s in spans if attrs(s).get("gen_ai.operation.name") == "chat"]
    assert (len(runs), len(tasks), len(calls), len(spans)) == (1, 9, 9, 19)
    (run,) = runs
    assert len({s.trace_id for _, s in spans}) == 1 and run.parent_span_id == b""
    assert all(t.parent_span_id == run.span_id for t in tasks)
    by_id = {t.span_id: t for t in tasks}
    assert all(c.parent_span_id in by_id for c in calls)
    # each task made exactly one call, inside its own span
    assert len({c.parent_span_id for c in calls}) == 9
    for c in calls:
        task = by_id[c.parent_span_id]
        a = attrs(c)
        assert attrs(task)["flock_es.task_id"] == a["flock_es.task_id"]
        assert task.start_time_unix_nano <= c.start_time_unix_nano <= c.end_time_unix_nano
        assert c.end_time_unix_nano <= task.end_time_unix_nano
        assert a["gen_ai.request.model"] == "offline" and c.name == "chat offline"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["flock_es.cost_usd"] == 0.0
    names = sorted(t.name for t in tasks)
    assert names[-2:] == ["technology_analyst.execute", "world_analyst.execute"]
    assert "editor.execute" in names
    assert run.start_time_unix_nano <= min(t.start_time_unix_nano for t in tasks)
    assert run.end_time_unix_nano >= max(t.end_time_unix_nano for t in tasks)
    assert attrs(run)["flock_es.status"] == "completed"


@pytest.mark.slow
def test_exporting_twice_sends_the_same_ids(news_db: Path, receiver: Receiver) -> None:
    for _ in range(2):
        assert (
            run_cli(["export", "latest", "--db", news_db, "--otlp", receiver.url]).returncode == 0
        )
    first, second = (
        [s.span_id for s in r.resource_spans[0].scope_spans[0].spans] for _, r in receiver.requests
    )
    assert first == second and len(first) == 19


@pytest.mark.slow
def test_no_payloads_or_prompts_leave_the_machine(news_db: Path, receiver: Receiver) -> None:
    assert run_cli(["export", "latest", "--db", news_db, "--otlp", receiver.url]).returncode == 0
    blob = receiver.requests[0][1].SerializeToString()
    assert b"Constitutional AI" not in blob and b"key_takeaways" not in blob


@pytest.mark.slow
def test_a_receiver_that_is_not_there_is_one_line(news_db: Path, receiver: Receiver) -> None:
    url = receiver.url
    receiver.shutdown()
    receiver.server_close()
    out = run_cli(["export", "latest", "--db", news_db, "--otlp", url])
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("flock-es: error: could not send the spans of r-")
    assert out.stderr.count("\n") == 1, out.stderr


@pytest.mark.slow
def test_a_malformed_endpoint_is_one_line(news_db: Path) -> None:
    out = run_cli(["export", "latest", "--db", news_db, "--otlp", "ftp://collector"])
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "not an http(s) URL" in out.stderr


@pytest.mark.slow
def test_without_the_extra_the_error_says_how_to_install_it(news_db: Path, tmp_path: Path) -> None:
    # A package named opentelemetry that refuses to import hides the real one.
    fake = tmp_path / "hide" / "opentelemetry"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    out = run_cli(
        ["export", "latest", "--db", news_db, "--otlp", "http://127.0.0.1:9"],
        env={"PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        "flock-es: error: --otlp needs the OpenTelemetry extra: pip install 'flock-es[otel]'\n"
    )


@pytest.mark.slow
def test_the_default_endpoint_follows_the_otel_environment(
    news_db: Path, receiver: Receiver
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "newsroom"}
    out = run_cli(["export", "latest", "--db", news_db, "--otlp"], env=env)
    assert out.returncode == 0, out.stderr
    assert json.dumps(sorted({r["service.name"] for r, _ in receiver.spans()})) == '["newsroom"]'
