#!/usr/bin/env python3
"""Exports a simulated Jarvis run to obs-appliance with the OpenTelemetry Python SDK, once over
OTLP/HTTP (protobuf, gzip) and once over OTLP/gRPC (gzip), each from its own TracerProvider:

  librechat  POST /api/ask               (server)
  librechat    POST agixt /run           (client)
    agixt        agixt.run               (server, session_id / run_id / agent)
      agixt  tool.search                 (client, task_id t-1, ok)
      agixt  tool.python                 (client, task_id t-2, status error, an event)

Each span is exported as it ends, one request per span (SimpleSpanProcessor), so every trace
arrives in five requests from two services, children first. Prints, as one JSON document, every finished span as the SDK holds it:
trace and span ids in hex, parent, name, kind, status, times, attributes, resource and events,
for the test to compare with what the appliance returns by trace id.
Exits non-zero if any export fails.
Usage: otlp_traces.py HTTP_BASE_URL GRPC_HOST:PORT
"""
import json
import sys

from grpc import Compression as GrpcCompression
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode


class Failed(Exception):
    pass


class Recording:
    """Wraps an exporter: remembers every span exported and every result."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []
        self.spans = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result)
        self.spans.extend(spans)
        return result


def describe(span):
    context = span.get_span_context()
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else "",
        "name": span.name,
        "kind": span.kind.value + 1,  # the SDK counts from INTERNAL = 0, OTLP from 1
        "status": {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[span.status.status_code],
        "status_message": span.status.description or "",
        "start": span.start_time,
        "end": span.end_time,
        "attributes": {key: value for key, value in span.attributes.items()},
        "service": span.resource.attributes.get("service.name"),
        "events": [event.name for event in span.events],
    }


def run(protocol, make_exporter, run_id):
    recordings = []

    def provider(service):
        recording = Recording(make_exporter())
        recordings.append(recording)
        resource = Resource.create({"service.name": service, "k8s.namespace.name": "jarvis"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(recording))
        return tracer_provider

    librechat = provider("librechat")
    agixt = provider("agixt")
    front = librechat.get_tracer("librechat.http")
    agent = agixt.get_tracer("agixt.agent", "1.4.0")
    with front.start_as_current_span("POST /api/ask", kind=SpanKind.SERVER) as request:
        request.set_attribute("http.request.method", "POST")
        request.set_attribute("http.response.status_code", 200)
        request.set_attribute("session_id", "s-42")
        with front.start_as_current_span("POST agixt /run", kind=SpanKind.CLIENT) as call:
            call.set_attribute("server.address", "agixt")
            with agent.start_as_current_span("agixt.run", kind=SpanKind.SERVER) as run_span:
                run_span.set_attribute("session_id", "s-42")
                run_span.set_attribute("run_id", run_id)
                run_span.set_attribute("agent", "jarvis")
                with agent.start_as_current_span("tool.search", kind=SpanKind.CLIENT) as tool:
                    tool.set_attribute("run_id", run_id)
                    tool.set_attribute("task_id", "t-1")
                    tool.set_attribute("agent", "worker")
                    tool.set_attribute("tool.results", 3)
                    tool.set_status(Status(StatusCode.OK))
                with agent.start_as_current_span("tool.python", kind=SpanKind.CLIENT) as tool:
                    tool.set_attribute("run_id", run_id)
                    tool.set_attribute("task_id", "t-2")
                    tool.set_attribute("agent", "worker")
                    tool.set_attribute("tool.timeout_s", 2.5)
                    tool.set_attribute("tool.retried", True)
                    tool.add_event("sandbox.killed", {"signal": "SIGKILL"})
                    tool.set_status(Status(StatusCode.ERROR, "sandbox timed out"))
    agixt.shutdown()
    librechat.shutdown()
    spans = []
    for recording in recordings:
        names = [str(result) for result in recording.results]
        if not recording.results or any(result != SpanExportResult.SUCCESS for result in recording.results):
            raise Failed(f"{protocol} exports: {names}")
        spans.extend(describe(span) for span in recording.spans)
    return spans


def main():
    base_url, grpc_address = sys.argv[1], sys.argv[2]
    spans = run(
        "http",
        lambda: HttpExporter(endpoint=f"{base_url}/v1/traces", compression=HttpCompression.Gzip),
        "r-http",
    )
    spans += run(
        "grpc",
        lambda: GrpcExporter(endpoint=grpc_address, insecure=True, compression=GrpcCompression.Gzip),
        "r-grpc",
    )
    print(json.dumps(spans))


if __name__ == "__main__":
    main()
