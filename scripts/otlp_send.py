#!/usr/bin/env python3
"""Sends traces to warden with the real OpenTelemetry Python SDK and OTLP
exporters (gRPC and HTTP/protobuf), for bin/warden/tests/integrations.rs.

The call tree of every trace, one TracerProvider (one resource) per service,
as in a real deployment where each service exports its own spans:

    frontend  --gRPC-->  checkout  --HTTP-->  payment (fails)
                                   --HTTP-->  inventory

Each service exports separately, callees first (children arrive before
their parents, in other requests), alternating gRPC and HTTP, with and
without gzip. Exits non-zero when an export is not acknowledged, or when an
export with a wrong token is.
"""

import argparse
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from grpc import Compression as GrpcCompression


def provider(name):
    memory = InMemorySpanExporter()
    p = TracerProvider(resource=Resource.create({"service.name": name}))
    p.add_span_processor(SimpleSpanProcessor(memory))
    return p.get_tracer("warden-test"), memory


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True, help="host:port")
    ap.add_argument("--http", required=True, help="host:port")
    ap.add_argument("--token", required=True)
    ap.add_argument("--traces", type=int, default=5)
    a = ap.parse_args()

    tracers = {n: provider(n) for n in ["frontend", "checkout", "payment", "inventory"]}
    tf, tc, tp, ti = (tracers[n][0] for n in ["frontend", "checkout", "payment", "inventory"])
    for _ in range(a.traces):
        with tf.start_as_current_span("GET /buy", kind=SpanKind.SERVER):
            with tf.start_as_current_span("POST checkout", kind=SpanKind.CLIENT) as c1:
                ctx = trace.set_span_in_context(c1)
                with tc.start_as_current_span("POST /checkout", context=ctx, kind=SpanKind.SERVER):
                    with tc.start_as_current_span("POST payment", kind=SpanKind.CLIENT) as c2:
                        ctx2 = trace.set_span_in_context(c2)
                        with tp.start_as_current_span(
                            "POST /pay", context=ctx2, kind=SpanKind.SERVER
                        ) as s:
                            s.set_status(Status(StatusCode.ERROR, "card declined"))
                        c2.set_status(Status(StatusCode.ERROR))
                    with tc.start_as_current_span("GET inventory", kind=SpanKind.CLIENT) as c3:
                        ctx3 = trace.set_span_in_context(c3)
                        with ti.start_as_current_span("GET /stock", context=ctx3, kind=SpanKind.SERVER):
                            pass

    auth = f"Bearer {a.token}"

    def grpc(gzip, token=auth):
        return GrpcExporter(
            endpoint=f"http://{a.grpc}",
            insecure=True,
            headers=(("authorization", token),),
            compression=GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression,
            timeout=10,
        )

    def http(gzip, token=auth):
        return HttpExporter(
            endpoint=f"http://{a.http}/v1/traces",
            headers={"authorization": token},
            compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
            timeout=10,
        )

    plan = [
        ("payment", http(False)),
        ("inventory", grpc(True)),
        ("checkout", http(True)),
        ("frontend", grpc(False)),
    ]
    failed = False
    for name, exporter in plan:
        spans = tracers[name][1].get_finished_spans()
        result = exporter.export(spans)
        print(f"{name}: {len(spans)} spans via {type(exporter).__module__.split('.')[-2]}: {result.name}")
        failed |= result != SpanExportResult.SUCCESS
        exporter.shutdown()
    # A wrong token must not be acknowledged, on either protocol.
    for exporter in [grpc(False, "Bearer wrong"), http(False, "Bearer wrong")]:
        result = exporter.export(tracers["frontend"][1].get_finished_spans())
        print(f"wrong token via {type(exporter).__module__.split('.')[-2]}: {result.name}")
        failed |= result == SpanExportResult.SUCCESS
        exporter.shutdown()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
