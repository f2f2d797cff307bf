"""Fixture shim for kafka-python's integration tests (its sdist ships
test/integration/fixtures.py, which imports this module, but not the module).

compat/run always points the tests at an already running broker through
KAFKA_URI, so only ExternalService is real; spawning brokers is not supported.
Written for Sluice's compat harness, copied into the unpacked sdist as test/service.py.
"""


class ExternalService:
    """A broker started outside the test run (by compat/run)."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        pass

    def stop(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True

    def dump_logs(self):
        pass


class SpawnedService:
    """Not supported: compat/run always sets KAFKA_URI."""

    def __init__(self, args=None, env=None):
        raise RuntimeError("compat/run sets KAFKA_URI; spawning a broker from the tests is not supported")
