"""Logs through Python's `logging` with the OpenTelemetry SDK's handler, exported over
OTLP/HTTP, as an instrumented function would. Run by tests/it/otlp.rs.

    emit.py ENDPOINT ENCODING COMPRESSION FUNCTION INSTANCE COUNT

ENCODING is `protobuf` or `json`, COMPRESSION `none` or `gzip`. Record i is logged at
DEBUG, INFO, WARNING or ERROR in turn, with the attribute `order.id` = i; every fifth
is logged inside a span. Prints the time the SDK gives each record (`time I NANOS`),
one line per record logged in a span (`span I TRACE SPAN`), and one per export
(`export RESULT RECORDS`) once the exporter has answered.
"""

import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def exporter(endpoint, encoding, compression):
    from opentelemetry.exporter.otlp.common.http import Compression

    if encoding == "json":
        from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    return OTLPLogExporter(
        endpoint=endpoint, compression=Compression.from_str(compression), timeout=30
    )


class Times(logging.Filter):
    """Tells each record's time, as the SDK's handler computes it from `created`."""

    def filter(self, record):
        print(f"time {record.__dict__['order.id']} {int(record.created * 1e9)}", flush=True)
        return True


class Reporting(LogRecordExporter):
    """Tells, on stdout, what became of each export."""

    def __init__(self, inner):
        self.inner = inner

    def export(self, batch):
        result = self.inner.export(batch)
        print(f"export {result.name} {len(batch)}", flush=True)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def main():
    endpoint, encoding, compression, function, instance, count = sys.argv[1:7]
    # The SDK's own warnings (an export retried) go to stderr, not back into OTLP.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    resource = Resource.create(
        {
            "service.name": f"{function}-service",
            "service.instance.id": "not-the-instance",
            "faas.name": function,
            "faas.instance": instance,
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            Reporting(exporter(endpoint, encoding, compression)),
            schedule_delay_millis=50,
            max_export_batch_size=512,
        )
    )
    log = logging.getLogger("function")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addFilter(Times())
    log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    tracer = TracerProvider(resource=resource).get_tracer("function")
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
    for i in range(int(count)):
        level = levels[i % len(levels)]
        text = f"record {i} at {logging.getLevelName(level)}"
        if i % 5 == 4:
            with tracer.start_as_current_span(f"work-{i}") as span:
                context = span.get_span_context()
                log.log(level, text, extra={"order.id": i})
                print(f"span {i} {context.trace_id:032x} {context.span_id:016x}", flush=True)
        else:
            log.log(level, text, extra={"order.id": i})
    provider.shutdown()


if __name__ == "__main__":
    main()
