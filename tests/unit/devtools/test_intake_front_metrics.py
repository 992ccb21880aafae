"""The local front merges the metrics of its two processes: the intake counts webhooks, the
worker everything after; an operator reads one exposition."""

from data_pipeline.devtools.intake_front import merge_expositions
from data_pipeline.observability.metrics import PipelineMetrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _values(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_samples_of_both_processes_add_up():
    front, worker = PipelineMetrics(), PipelineMetrics()
    for _ in range(3):
        front.webhooks_accepted.inc()
    front.settle("duplicate")
    worker.settle("loaded")
    worker.settle("loaded")
    worker.settle("duplicate")
    front.ack_seconds.observe(0.004)
    front.ack_seconds.observe(0.3)
    worker.ack_seconds.observe(0.004)
    merged = merge_expositions(
        generate_latest(worker.registry).decode(), generate_latest(front.registry).decode()
    ).decode()
    values = _values(merged)
    assert values[("pipeline_webhooks_accepted_total", ())] == 3
    assert values[("pipeline_events_settled_total", (("outcome", "loaded"),))] == 2
    assert values[("pipeline_events_settled_total", (("outcome", "duplicate"),))] == 2
    assert values[("pipeline_webhook_ack_seconds_count", ())] == 3
    assert values[("pipeline_webhook_ack_seconds_sum", ())] == 0.308
    assert values[("pipeline_webhook_ack_seconds_bucket", (("le", "0.005"),))] == 2
    assert values[("pipeline_webhook_ack_seconds_bucket", (("le", "+Inf"),))] == 3
    # One HELP and TYPE per family: a valid exposition, not two pasted together.
    helps = [line for line in merged.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps))


def test_creation_times_are_the_earliest_not_a_sum():
    earlier, later = PipelineMetrics(), PipelineMetrics()
    earlier.webhooks_accepted.inc()
    later.webhooks_accepted.inc()
    texts = [generate_latest(m.registry).decode() for m in (earlier, later)]
    created = [
        v
        for (name, _), v in _values(merge_expositions(*texts).decode()).items()
        if name == "pipeline_webhooks_accepted_created"
    ]
    originals = [_values(t)[("pipeline_webhooks_accepted_created", ())] for t in texts]
    assert created == [min(originals)]
