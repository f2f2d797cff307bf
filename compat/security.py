"""The `security` suite of compat/run: the client suites' own TLS, SASL and ACL tests,
against a broker with SSL, SASL_PLAINTEXT and SASL_SSL listeners beside PLAINTEXT and
Kafka's StandardAuthorizer, configured alike on Sluice and on the reference Kafka (the
same Kafka keys, the same PEM key and certificate from `sluice tls init`).

- kafka-python: test_ssl_integration.py, test_sasl_integration.py (PLAIN, SCRAM-SHA-256,
  SCRAM-SHA-512) and test_admin_integration.py::test_create_describe_delete_acls, with
  compat/kafka-python/compat_secure.py handing the fixtures the listeners.
- librdkafka tests/: 0081_admin's ACL and SCRAM APIs, 0109, 0115 and 0119 (ACLs added with
  bin/kafka-acls.sh over PLAINTEXT, as the tests do when security.protocol is plaintext).
- franz-go: TestSCRAMAuth, TestSCRAMAuthBadCredentials, TestOAuthAuth (unsecured JWS) on the
  SASL_PLAINTEXT listener, and a few broker tests over the SSL listener (KGO_TEST_TLS).

Left out: librdkafka's SSL/SASL tests proper (0097, 0135, 0142, 0126): compat/run builds
librdkafka with --disable-ssl --disable-sasl.
"""
import json
import os
import subprocess
import time
from types import SimpleNamespace

LISTENERS = ["SSL", "SASL_PLAINTEXT", "SASL_SSL"]
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
# kafka-python's KafkaFixture user; franz-go's KGO_TEST_SCRAM takes the same.
USER, PASSWORD = "alice", "alice-secret"

KP_TESTS = ["test/integration/test_ssl_integration.py",
            "test/integration/test_admin_integration.py::test_create_describe_delete_acls"]
KP_SASL = ["test/integration/test_sasl_integration.py"]
# --bounded: one mechanism of each kind (PLAIN, SCRAM-SHA-512) of the SASL tests.
KP_SASL_BOUNDED = "not SCRAM-SHA-256"

RDK_NUMS = ["0081", "0109", "0115", "0119"]
RDK_NUMS_BOUNDED = ["0081", "0119"]
RDK_SPLIT = {"0081": ["CreateAcls", "DescribeAcls", "DeleteAcls", "UserScramCredentials"]}

FRANZ_SASL = ["TestSCRAMAuth", "TestSCRAMAuthBadCredentials", "TestOAuthAuth"]
# franz-go broker tests run again over the SSL listener.
FRANZ_TLS = ["TestPing", "TestClient_Produce", "TestGroupSimple", "TestConsumeRegex",
             "TestAddRemovePartitions"]
FRANZ_TLS_BOUNDED = ["TestPing", "TestClient_Produce"]


def tls_dir(h):
    """`sluice tls init`'s CA, broker and client PEM files (made once)."""
    d = h.CACHE / "security-tls"
    if not (d / "broker.pem").exists():
        binary = h.ROOT / "target/debug/sluice"
        if not binary.exists():
            h.sh(["cargo", "build", "-q", "-p", "sluice"], cwd=h.ROOT)
        h.sh([str(binary), "tls", "init", "--dir", str(d), "--force"], stdout=subprocess.DEVNULL)
    return d


def broker_config(tls):
    """Kafka keys, the same on both brokers (kafka-python's fixture sets the authorizer
    the same way for Kafka 4)."""
    c = {"num.partitions": "4",  # as librdkafka's and kafka-python's test clusters
         "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
         "allow.everyone.if.no.acl.found": "true",
         "sasl.enabled.mechanisms": ",".join(MECHANISMS),
         "ssl.keystore.type": "PEM",
         "ssl.keystore.location": str(tls / "broker.pem")}
    for lis in ("sasl_plaintext", "sasl_ssl"):
        c[f"listener.name.{lis}.plain.sasl.jaas.config"] = (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";')
        for mech in ("scram-sha-256", "scram-sha-512"):
            c[f"listener.name.{lis}.{mech}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        c[f"listener.name.{lis}.oauthbearer.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;")
    return c


def add_scram_user(h, broker):
    """SCRAM credentials for USER, with Kafka's kafka-configs over PLAINTEXT."""
    # One mechanism per request: Kafka refuses a user altered twice in one request.
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        rc, out, err = h.tool("configs", "--bootstrap-server", broker.addr, "--alter",
                              "--add-config", f"{mech}=[password={PASSWORD}]",
                              "--entity-type", "users", "--entity-name", USER)
        if rc != 0:
            raise RuntimeError(f"kafka-configs --add-config {mech} failed on {broker.name}: {err[-500:]}")
    time.sleep(1)  # the credential reaches the broker's metadata image


def kafka_python(h, broker, bounded):
    src, venv = h.kp_install()
    secure = json.dumps(broker.listeners)
    base = dict(os.environ, KAFKA_VERSION=h.KAFKA_VERSION, KAFKA_ROOT=str(h.ROOT / ".cache/kafka"),
                COMPAT_SECURE_LISTENERS=secure, COMPAT_SECURE_CA=str(tls_dir(h) / "ca.pem"),
                PYTHONPATH=str(h.COMPAT / "kafka-python"))
    res = {}
    # The SASL tests skip themselves when KAFKA_URI is set; their fixture asks for a broker.
    runs = [("", KP_TESTS, dict(base, KAFKA_URI=f"kafka://{broker.addr}"), []),
            ("-sasl", KP_SASL, {k: v for k, v in base.items() if k != "KAFKA_URI"},
             ["-k", KP_SASL_BOUNDED] if bounded else [])]
    for tag, paths, env, extra in runs:
        xml = h.RESULTS / f"security-kafka-python{tag}-{broker.name}{h.raw_tag(broker, bounded)}.xml"
        cmd = [str(venv / "bin/python"), "-m", "pytest", "-p", "no:cacheprovider", "-p", "compat_secure",
               "-q", "--tb=line", "-o", "log_level=WARNING", "--timeout=90", "--timeout-method=signal",
               f"--junitxml={xml}"] + paths + extra
        with open(xml.with_suffix(".log"), "w") as f:
            subprocess.run(cmd, cwd=src, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900)
        res.update({f"kafka-python:{t}": r for t, r in h.kp_results(xml).items()})
    return res


def librdkafka(h, broker, bounded):
    nums = RDK_NUMS_BOUNDED if bounded else RDK_NUMS
    res = h.rdk_run_suite(broker, bounded, nums, "security-librdkafka", {}, RDK_SPLIT)
    return {f"librdkafka:{t}": r for t, r in res.items()}


def franz_go(h, broker, bounded):
    src, binary = h.franz_install()
    tag = f"{broker.name}{h.raw_tag(broker, bounded)}"
    sasl = broker.listeners["SASL_PLAINTEXT"]
    res = h.franz_exec(src, binary, FRANZ_SASL, h.RESULTS / f"security-franz-go-sasl-{tag}.jsonl",
                       KGO_SEEDS=broker.addr, KGO_TEST_RF="1", KGO_TEST_SCRAM_SEEDS=sasl,
                       KGO_TEST_SCRAM=f"{USER}:{PASSWORD}:512", KGO_TEST_OAUTH_SEEDS=sasl)
    out = {f"franz-go:{t}": r for t, r in res.items()}
    tls = h.franz_exec(src, binary, FRANZ_TLS_BOUNDED if bounded else FRANZ_TLS,
                       h.RESULTS / f"security-franz-go-tls-{tag}.jsonl",
                       KGO_SEEDS=broker.listeners["SSL"], KGO_TEST_RF="1",
                       KGO_TEST_TLS=f"ca:{tls_dir(h) / 'ca.pem'}")
    out.update({f"franz-go:SSL/{t}": r for t, r in tls.items()})
    return out


def run(h, broker, bounded):
    """Runs the security tests of every client suite against `broker` (started with
    LISTENERS and broker_config); {client:test: result}, the suite's description."""
    add_scram_user(h, broker)
    res = {}
    for part in (kafka_python, franz_go, librdkafka):
        res.update(part(h, broker, bounded))
    return res, ("TLS/SASL/ACL tests of kafka-python (SSL, SASL, ACL admin), franz-go (SCRAM, "
                 "OAUTHBEARER, broker tests over SSL) and librdkafka (0081 ACL/SCRAM APIs, 0109, "
                 "0115, 0119)")


def helpers(ns):
    """What `run` needs from compat/run, as a namespace."""
    keys = ["CACHE", "ROOT", "COMPAT", "RESULTS", "KAFKA_VERSION", "sh", "tool", "kp_install",
            "kp_results", "franz_install", "franz_exec", "rdk_run_suite", "raw_tag"]
    return SimpleNamespace(**{k: ns[k] for k in keys})


BEGIN = "<!-- compat/run --suite security: the TLS/SASL/ACL section, rewritten from compat/results -->"
END = "<!-- end of the TLS/SASL/ACL section -->"


def section(data, allow, matrix_rows, sluice_only_lines, both_fail_lines):
    """COMPATIBILITY.md's section of the security suite (between BEGIN and END)."""
    lines = [BEGIN, "## TLS, SASL and ACLs", "",
             "The suites' own TLS, SASL and ACL tests (`compat/security.py` lists them), run by",
             "`compat/run --suite security --broker both` against a Sluice and an Apache Kafka",
             "configured alike: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners on the PEM key",
             "and certificate of `sluice tls init`, PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER, and",
             "Kafka's StandardAuthorizer with `allow.everyone.if.no.acl.found=true`. Test ids name",
             "the client suite.", ""]
    lines += matrix_rows(data)
    lines += ["", "### Fails on Sluice, passes on Apache Kafka (TLS/SASL/ACL)", ""]
    lines += sluice_only_lines(data, allow)
    lines += ["", "### Fails on both brokers (TLS/SASL/ACL)", ""]
    lines += both_fail_lines(data)
    lines += ["", "### Passes on Sluice, fails on Apache Kafka (TLS/SASL/ACL)", ""]
    out = []
    for (suite, broker), s in sorted(data.items()):
        if broker != "sluice" or (suite, "kafka") not in data:
            continue
        kafka = data[(suite, "kafka")]["results"]
        for t, r in sorted(s["results"].items()):
            k = kafka.get(t, {})
            if r["status"] == "pass" and k.get("status") == "fail":
                out.append(f"- `{t}`: Kafka: " + " ".join(k.get("message", "").split())[:200])
    lines += out or ["None."]
    lines += [END, ""]
    return "\n".join(lines)
