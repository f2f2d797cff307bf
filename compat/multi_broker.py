"""The 3-broker column of the compat matrix (`compat/run --brokers 3`): a 3-node
Sluice (`sluice cluster start`) or a 3-node Apache Kafka (`scripts/kafka-cluster`),
the same settings on both, and which tests of each client suite need several
brokers. Imported by compat/run.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODES = 3

# The same settings on both clusters (on top of what `sluice cluster start` and
# scripts/kafka-cluster write: combined roles, default.replication.factor=3,
# offsets.topic.replication.factor=3). {id} becomes the node's id.
CLUSTER_CONFIG = {
    # librdkafka's trivup test cluster: racks RACK<id> and the rack-aware selector
    # (0101_fetch_from_follower reads broker.rack of every replica through DescribeConfigs).
    "broker.rack": "RACK{id}",
    "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    "min.insync.replicas": "2",
    "group.initial.rebalance.delay.ms": "0",
}

# Tests that need several brokers, per suite.
# librdkafka: 0101 (fetch from follower: RF 3, racks), and the 0081 admin APIs whose checks depend on the broker count
# (replica assignments over every broker, DescribeCluster/DescribeTopics listing them)
# plus the record APIs that go to each partition's leader.
RDK_MULTI = ["0081", "0101"]
RDK_MULTI_SPLIT = {"0081": ["CreateTopics", "DeleteTopics", "CreatePartitions", "AlterConfigs",
                            "DescribeConfigs", "DescribeTopics", "DescribeCluster",
                            "DeleteRecords", "ListOffsets"]}
# librdkafka's transaction tests (the `librdkafka-txn` suite, 3 brokers only): every test of
# its tests/ that calls init_transactions against a real broker. 0055's transactional case is
# a latency check (librdkafka skips the test when CI is set); 0098 runs librdkafka's Java
# TransactionProducerCli (KAFKA_PATH: the pinned Kafka's jars); 0129 creates its topic with
# segment.bytes=20000. Left out: 0105 (mock cluster only) and 0142 (SASL).
RDK_TXN = ["0055", "0061", "0098", "0103", "0129", "0137"]
# Its CI subset (compat/run --brokers 3 --bounded, scripts/test): the core transaction
# tests (misuse, fencing, empty transactions, read_committed watermarks and lag, control
# records consumed in batches), about a minute at three test-runners at a time.
RDK_TXN_BOUNDED = ["0061", "0103", "0137"]
# kafka-python: the admin tests (describe_log_dirs of every broker, elect_leaders,
# partition reassignments, describe_cluster), and producer/consumer against leaders
# spread over three brokers; fixtures create topics at RF 1.
KP_MULTI = ["test/integration/test_admin_integration.py",
            "test/integration/test_producer_integration.py",
            "test/integration/test_consumer_integration.py"]
KP_MULTI_DESELECT = "not transactional"
# franz-go: every broker test at its own default KGO_TEST_RF=3, except the two long
# ETL chains (minutes each; TestTxnEtl needs transactions).
FRANZ_MULTI_SKIP = {"TestGroupETL", "TestTxnEtl"}


def brokers_listed(addr):
    """How many brokers a raw Metadata v0 request to `addr` lists (0 if none answers)."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.settimeout(5)
            client = b"compat"
            body = struct.pack(">hhih", 3, 0, 7, len(client)) + client + struct.pack(">i", 0)
            s.sendall(struct.pack(">i", len(body)) + body)
            buf = b""
            while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    return 0
                buf += chunk
            corr, count = struct.unpack(">ii", buf[4:12])
            return count if corr == 7 else 0
    except (OSError, struct.error):
        return 0


class Cluster:
    """A 3-node cluster with the interface of compat/run's Broker: name, addr (the
    bootstrap list), first (node 1's address), nodes, start(), stop(), version()."""

    def __init__(self, name, config, workdir, version):
        self.name = name
        self.config = dict(CLUSTER_CONFIG, **config)  # both cluster tools expand {id}
        self.nodes = NODES
        self.dir = Path(workdir) / name
        self.version = version  # compat/run's Broker.version, bound to this cluster
        self.proc = None
        self.addr = None
        self.first = None
        var = "COMPAT_KAFKA_CLUSTER_PORT" if name == "kafka" else "COMPAT_SLUICE_CLUSTER_PORT"
        self.base = int(os.environ.get(var, "49092" if name == "kafka" else "48092"))

    def _kafka_env(self):
        props = "\n".join(f"{k}={v}" for k, v in self.config.items())
        return dict(os.environ, KAFKA_CLUSTER_BASE_PORT=str(self.base),
                    KAFKA_CLUSTER_DIR=str(self.dir), KAFKA_CLUSTER_PROPS=props)

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        addrs = [f"127.0.0.1:{self.base + i}" for i in range(NODES)]
        if self.name == "kafka":
            out = subprocess.run([str(ROOT / "scripts/kafka-cluster"), "start"], env=self._kafka_env(),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError("scripts/kafka-cluster start failed: " + out.stderr[-2000:])
        else:
            binary = ROOT / "target/debug/sluice"
            if not binary.exists():
                subprocess.run(["cargo", "build", "-q", "-p", "sluice"], cwd=ROOT, check=True)
            args = [str(binary), "cluster", "start", "--nodes", str(NODES), "--dir", str(self.dir / "nodes"),
                    "--base-port", str(self.base)]
            for k, v in self.config.items():
                args += ["--override", f"{k}={v}"]
            logf = open(self.dir / "cluster.log", "w")
            # Its own process group: stop() can always take every node down with it.
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 240
        while not all(brokers_listed(a) == NODES for a in addrs):
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"sluice cluster start exited: see {self.dir / 'cluster.log'}")
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name}: Metadata did not list {NODES} brokers on every node within 240 s")
            time.sleep(1)
        self.addr, self.first = ",".join(addrs), addrs[0]
        print(f"compat: 3-node {self.name} up: {self.addr}", flush=True)

    def stop(self):
        if self.name == "kafka":
            subprocess.run([str(ROOT / "scripts/kafka-cluster"), "stop"], env=self._kafka_env())
        elif self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # stops every node (SIGKILL after 60 s)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
