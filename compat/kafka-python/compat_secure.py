"""pytest plugin for kafka-python's SSL and SASL integration tests (compat/run's
security suite loads it with `-p compat_secure`).

Those tests ask the fixture module for a broker of a given transport
(`KafkaFixture.instance(0, transport='SSL')`, `kafka_broker_factory(
transport='SASL_PLAINTEXT', sasl_mechanism=...)`), and the fixture would spawn
one from the sdist's missing templates with JKS stores. compat/run starts the
broker itself, Sluice or Kafka configured alike, with one listener per security
protocol, and passes their addresses here:

  COMPAT_SECURE_LISTENERS  JSON {"SSL": "127.0.0.1:port", "SASL_PLAINTEXT": ..., ...}
  COMPAT_SECURE_CA         the CA certificate (PEM) that signed the listeners' certificate

A broker of another transport than PLAINTEXT becomes an external fixture on that
listener, with `ssl_dir/ca-cert` holding the CA as the tests expect; the user and
password are the fixture's own (`alice`/`alice-secret`), which compat/run created
on the broker for PLAIN (JAAS) and SCRAM-SHA-256/512 (AlterUserScramCredentials).
The tests themselves run unchanged.
"""
import json
import os
import shutil
import tempfile

import pytest


def _secure_fixture(fixtures, listeners, ca):
    base = fixtures.KafkaFixture
    ssl_dir = tempfile.mkdtemp(prefix="compat-ssl-")
    shutil.copy(ca, os.path.join(ssl_dir, "ca-cert"))

    class SecureExternalFixture(base):
        def get_topic_names(self):
            # The fixture lists topics with bin/kafka-topics.sh and a --command-config
            # rendered from a template the sdist does not ship: ask over the same listener.
            from kafka import KafkaAdminClient
            params = self._enrich_client_params({"client_id": "topic_lister"})
            with KafkaAdminClient(**params) as admin:
                return admin.list_topics()

    original = base.instance.__func__

    def instance(cls, broker_id, *args, transport="PLAINTEXT", sasl_mechanism=None,
                 partitions=4, replicas=1, **kw):
        proto = transport.upper()
        if proto == "PLAINTEXT":
            return original(cls, broker_id, *args, transport=transport, sasl_mechanism=sasl_mechanism,
                            partitions=partitions, replicas=replicas, **kw)
        if proto not in listeners:
            raise RuntimeError(f"compat/run started no {proto} listener")
        host, port = listeners[proto].rsplit(":", 1)
        fx = SecureExternalFixture(host, int(port), broker_id, transport=proto,
                                   sasl_mechanism=sasl_mechanism, partitions=partitions,
                                   replicas=replicas, external=True)
        if fx.ssl_enabled:
            fx.ssl_dir = ssl_dir
        return fx

    base.instance = classmethod(instance)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    spec = os.environ.get("COMPAT_SECURE_LISTENERS")
    if not spec:
        return
    from test.integration import fixtures
    _secure_fixture(fixtures, json.loads(spec), os.environ["COMPAT_SECURE_CA"])
