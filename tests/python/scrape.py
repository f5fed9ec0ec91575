"""Parses Prometheus' text format from stdin with prometheus_client's own parser and
prints each sample as a JSON line: {"name": ..., "labels": {...}, "value": ...}, after
one line per family: {"family": ..., "type": ..., "help": ...}. A text the parser
refuses makes the script fail, with the parser's error."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    print(json.dumps({"family": family.name, "type": family.type, "help": family.documentation}))
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
