"""CloudWatch Embedded Metric Format from the service's Prometheus metric definitions."""

import io
import json

from data_pipeline.observability.emf import EmfExporter
from data_pipeline.observability.metrics import PipelineMetrics


def exporter(metrics, stream):
    return EmfExporter(
        metrics.registry, deployment="prod", role="worker", stream=stream, clock=lambda: 1000.0
    )


def test_counters_are_written_as_their_increase_with_labels_as_dimensions():
    metrics, stream = PipelineMetrics(), io.StringIO()
    emf = exporter(metrics, stream)
    metrics.settle("loaded")
    metrics.settle("loaded")
    metrics.settle("duplicate")
    documents = {d["outcome"]: d for d in emf.flush() if "outcome" in d}
    assert documents["loaded"]["pipeline_events_settled_total"] == 2
    assert documents["duplicate"]["pipeline_events_settled_total"] == 1
    directive = documents["loaded"]["_aws"]
    assert directive["Timestamp"] == 1_000_000
    assert directive["CloudWatchMetrics"][0]["Dimensions"] == [["Deployment", "Role", "outcome"]]
    assert directive["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "pipeline_events_settled_total", "Unit": "Count"}
    ]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["Deployment"] == "prod" for line in lines)
    metrics.settle("loaded")
    (again,) = emf.flush()  # only what changed since the last flush
    assert again["pipeline_events_settled_total"] == 1 and again["outcome"] == "loaded"
    assert emf.flush() == []


def test_histograms_are_written_as_values_and_counts_of_new_observations():
    metrics = PipelineMetrics()
    emf = exporter(metrics, io.StringIO())
    for seconds in (0.001, 0.003, 0.004, 7.0):  # 7 s is above the last bucket (2.5 s)
        metrics.ack_seconds.observe(seconds)
    (document,) = [d for d in emf.flush() if "pipeline_webhook_ack_seconds" in d]
    assert document["pipeline_webhook_ack_seconds"] == {
        "Values": [0.002, 0.005, 2.5],
        "Counts": [1.0, 2.0, 1.0],
    }
    assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Seconds"
    metrics.ack_seconds.observe(0.02)
    (document,) = [d for d in emf.flush() if "pipeline_webhook_ack_seconds" in d]
    assert document["pipeline_webhook_ack_seconds"] == {"Values": [0.025], "Counts": [1.0]}
