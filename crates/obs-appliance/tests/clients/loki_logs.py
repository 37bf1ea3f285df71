#!/usr/bin/env python3
"""Sends logs to obs-appliance with real clients:

1. python-logging-loki (PyPI), the Loki handler of Python's logging, over Loki's JSON push API:
   three records of a simulated Jarvis run, with `tags` as stream labels.
2. The OpenTelemetry Python SDK's OTLP log exporters, over HTTP (protobuf, gzip) and gRPC
   (gzip), each from its own LoggerProvider whose service.name names the protocol: two records
   per protocol, the second inside a span, so trace and span ids travel with it.

Prints one line per OpenTelemetry record as `protocol trace_id span_id` (hex), for the test to
check the join from logs to traces. Exits non-zero if any client reports a failure.

Usage: loki_logs.py HTTP_BASE_URL GRPC_HOST:PORT
"""
import logging
import sys

import logging_loki
from grpc import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


class Failed(Exception):
    pass


def loki_handler(base_url):
    failures = []

    class Checked(logging_loki.LokiHandler):
        def handleError(self, record):
            failures.append(sys.exc_info()[1])

    handler = Checked(
        url=f"{base_url}/loki/api/v1/push",
        tags={"app": "jarvis", "namespace": "agents"},
        version="1",
    )
    logger = logging.getLogger("jarvis.loki")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    logger.info('{"run_id":"r-100","session_id":"s-7","agent":"planner","msg":"run started"}')
    logger.warning("level=warn run_id=r-100 agent=worker msg=\"tool slow\" duration=2.5s")
    logger.error(
        "tool call failed: connection refused",
        extra={"tags": {"component": "tools"}},
    )
    handler.close()
    if failures:
        raise Failed(f"python-logging-loki failed: {failures}")


class CheckedExporter:
    """Wraps an exporter and remembers every export's result."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def export(self, batch, *args, **kwargs):
        result = self.inner.export(batch, *args, **kwargs)
        self.results.append(result)
        return result


def otlp(protocol, exporter):
    checked = CheckedExporter(exporter)
    resource = Resource.create({"service.name": f"jarvis-{protocol}", "k8s.pod.name": "jarvis-0", "host.name": "node-3"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(checked))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger = logging.getLogger(f"agixt.{protocol}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    logger.info("agent loop begins", extra={"run_id": "r-200", "agent": "jarvis"})
    tracer = TracerProvider(resource=resource).get_tracer("obs-test")
    with tracer.start_as_current_span("tool.call") as span:
        logger.error("tool call failed", extra={"run_id": "r-200", "task_id": "t-3", "agent": "worker"})
        context = span.get_span_context()
        print(f"{protocol} {context.trace_id:032x} {context.span_id:016x}")
    provider.shutdown()
    names = [str(result) for result in checked.results]
    if not checked.results or any("SUCCESS" not in name for name in names):
        raise Failed(f"{protocol} exports: {names}")


def main():
    base_url, grpc_address = sys.argv[1], sys.argv[2]
    loki_handler(base_url)
    otlp("http", HttpExporter(endpoint=f"{base_url}/v1/logs", compression=HttpCompression.Gzip))
    otlp("grpc", GrpcExporter(endpoint=grpc_address, insecure=True, compression=GrpcCompression.Gzip))


if __name__ == "__main__":
    main()
