#!/usr/bin/env bash
# Kafka's own CLI tools (4.1.2, from .cache/kafka/lib): kafka-topics,
# kafka-console-producer, kafka-console-consumer and kafka-get-offsets, run as
# `java -cp '.cache/kafka/lib/*' <class>` with the class names of Kafka
# 4.1.2's bin/*.sh. The orchestration and checks are in cli_driver.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/cli_driver.py" "$@"
