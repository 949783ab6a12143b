"""A consumer process for crash tests: relays ImageSetSubmitted -> DialogueGenerated, slowly."""

from __future__ import annotations

import sys
import time

from vispod.common.bus import EventConsumer, Output
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.v1 import events_pb2


def main() -> None:
    bootstrap, prefix, delay, delivery = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, delivery=delivery, max_poll_records=5)

    def relay(env):  # type: ignore[no-untyped-def]
        time.sleep(delay)
        yield Output(Topic.DIALOGUE_GENERATED, events_pb2.DialogueGenerated(image_set_id=env.message.image_set_id))

    consumer = EventConsumer(service="relay", topics=[Topic.IMAGESET_SUBMITTED], expected=events_pb2.ImageSetSubmitted,
                             handler=relay, kafka=kafka, instance_id="crash-test")
    print("starting", flush=True)
    consumer.run()


if __name__ == "__main__":
    main()
