"""QStash URL groups ("topics"), named by the shared contract and scoped to the stack.

URL groups are account-level and `QStashTopicV2` owns a group's whole endpoint list, so each
stack has its own groups (`<prefix>raw-events`, …; the service learns the prefix from
QSTASH_TOPIC_PREFIX): deploying or destroying one stack never touches another's.
`raw-events` delivers to the service's `/api/queue/process-event` at the deployed base URL.
`cdc-events` and `notifications` are provisioned for other services, which are subscribed through
`pipeline:topicSubscribers` (a topic nobody subscribes to yet is created empty). Domain events
(shared/domain_events.py) get one URL group each, `<prefix>event.<name>`, when someone subscribes
to them under the event's name (`order.created: [https://…]`). The QStash token
and signing keys are account-level: they come from stack secrets, not from a resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import upstash_pulumi as upstash

from shared.domain_events import EVENT_NAMES, event_topic
from shared.topics import ALL_TOPICS, CDC_DRAIN_CRON, CDC_DRAIN_PATH, TOPIC_DELIVERY_PATHS, scoped


@dataclass
class MessagingArgs:
    service_base_url: pulumi.Input[str]
    topic_prefix: str
    subscribers: dict[str, list[str]] = field(default_factory=dict)
    cdc_enabled: bool = False  # a schedule drains the PostgreSQL slot every minute


class Messaging(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:Messaging", name, None, opts)
        unknown = set(args.subscribers) - set(ALL_TOPICS) - set(EVENT_NAMES)
        if unknown:
            raise pulumi.RunError(
                f"pipeline:topicSubscribers names unknown topics: {', '.join(sorted(unknown))} "
                f"(topics: {', '.join(ALL_TOPICS)}; domain events: {', '.join(EVENT_NAMES)})"
            )
        base = pulumi.Output.from_input(args.service_base_url).apply(lambda url: url.rstrip("/"))
        self.topics: dict[str, pulumi.CustomResource] = {}
        self.endpoints: dict[str, pulumi.Output[list[str]]] = {}
        for topic in ALL_TOPICS:
            ours = (
                [base.apply(lambda url, t=topic: url + TOPIC_DELIVERY_PATHS[t])]
                if (topic in TOPIC_DELIVERY_PATHS)
                else []
            )
            urls = pulumi.Output.all(*ours, *args.subscribers.get(topic, []))
            self.endpoints[topic] = urls
            child = pulumi.ResourceOptions(parent=self)
            if ours or args.subscribers.get(topic):
                self.topics[topic] = upstash.QStashTopicV2(
                    f"{name}-{topic}",
                    name=scoped(args.topic_prefix, topic),
                    endpoints=urls,
                    opts=child,
                )
            else:
                self.topics[topic] = upstash.QStashTopic(
                    f"{name}-{topic}", name=scoped(args.topic_prefix, topic), opts=child
                )
        # One URL group per subscribed domain event (a URL group exists only with endpoints;
        # the service publishes only these, from the same DOMAIN_EVENTS list).
        self.event_topics: dict[str, str] = {}
        for event in EVENT_NAMES:
            urls_of_event = args.subscribers.get(event, [])
            if not urls_of_event:
                continue
            topic_name = scoped(args.topic_prefix, event_topic(event))
            self.topics[event_topic(event)] = upstash.QStashTopicV2(
                f"{name}-{event_topic(event)}",
                name=topic_name,
                endpoints=urls_of_event,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.event_topics[event] = topic_name
        self.cdc_drain: pulumi.CustomResource | None = None
        if args.cdc_enabled:
            # The function cannot hold a replication connection: QStash calls the drain every
            # minute (signed like any delivery); a drain that finds more re-publishes itself.
            self.cdc_drain = upstash.QStashScheduleV2(
                f"{name}-cdc-drain",
                cron=CDC_DRAIN_CRON,
                destination=base.apply(lambda url: url + CDC_DRAIN_PATH),
                body="{}",
                content_type="application/json",
                method="POST",
                retries=0,  # the next minute's drain is the retry
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"topics": list(self.topics)})
