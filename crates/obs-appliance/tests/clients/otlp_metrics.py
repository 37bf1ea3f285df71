#!/usr/bin/env python3
"""Sends metrics to obs-appliance with the real OpenTelemetry Python SDK.

One export over OTLP/HTTP (protobuf, gzip) and one over OTLP/gRPC (gzip), each from its own
MeterProvider whose resource names the protocol in service.name, so the test can tell them
apart. Instruments: a counter, a histogram with the SDK's default buckets, an up-down counter
and an observable gauge; cumulative temporality (the SDK default).

Usage: otlp_metrics.py HTTP_BASE_URL GRPC_HOST:PORT
"""
import sys

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from grpc import Compression as GrpcCompression


class CheckedExporter:
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        return result


def send(protocol, exporter):
    checked = CheckedExporter(exporter)
    reader = PeriodicExportingMetricReader(checked, export_interval_millis=3_600_000)
    resource = Resource.create(
        {
            "service.name": f"jarvis-{protocol}",
            "service.namespace": "agents",
            "service.instance.id": "pod-1",
            "deployment.environment": "test",
        }
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("obs-test", "0.1")
    requests = meter.create_counter("llm.requests", unit="{request}", description="LLM requests")
    requests.add(3, {"agent": "planner"})
    latency = meter.create_histogram("llm.latency", unit="ms", description="LLM latency")
    for value in (5, 50, 500):
        latency.record(value, {"agent": "planner"})
    depth = meter.create_up_down_counter("queue.depth", description="Queued tasks")
    depth.add(4)
    depth.add(-1)
    meter.create_observable_gauge(
        "gpu.temperature",
        callbacks=[lambda options: [Observation(61.5, {"gpu": "0"})]],
        unit="Cel",
        description="GPU temperature",
    )
    provider.force_flush(timeout_millis=10_000)
    provider.shutdown()
    if not checked.results or any(result != MetricExportResult.SUCCESS for result in checked.results):
        raise SystemExit(f"{protocol} export failed: {checked.results}")
    print(f"{protocol}: {len(checked.results)} export(s) succeeded")


def main():
    http_base, grpc_target = sys.argv[1], sys.argv[2]
    send(
        "http",
        HttpExporter(endpoint=f"{http_base}/v1/metrics", compression=HttpCompression.Gzip, timeout=10),
    )
    send(
        "grpc",
        GrpcExporter(endpoint=grpc_target, insecure=True, compression=GrpcCompression.Gzip, timeout=10),
    )


if __name__ == "__main__":
    main()
