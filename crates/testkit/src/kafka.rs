//! [`ReferenceKafka`]: the pinned Apache Kafka (jars in `.cache/kafka/lib`)
//! in KRaft combined mode on free loopback ports, for comparing answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{io, TestkitError};

const START_TIMEOUT: Duration = Duration::from_secs(180);

/// Starts of one reference Kafka whose port was taken meanwhile (see
/// [`lost_a_port_race`]) before giving up.
pub(crate) const START_ATTEMPTS: u32 = 3;

/// A running reference Kafka broker+controller. Stopped (killed) on drop.
pub struct ReferenceKafka {
    lib: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    /// The port of the extra listener of [`ReferenceKafka::start_with_listener`].
    extra_port: Option<u16>,
    output: Arc<Mutex<String>>,
}

pub(crate) fn free_port() -> Result<u16, TestkitError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Kafka's base64 form of a random UUID (22 characters, URL-safe, no padding).
pub(crate) fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    loop {
        let id = uuid::Uuid::new_v4();
        let v = id.as_u128();
        let mut s = String::with_capacity(22);
        for i in 0..22 {
            let shift = 128i32 - 6 * (i + 1);
            let idx = if shift >= 0 {
                (v >> shift) & 63
            } else {
                (v << (-shift)) & 63
            };
            s.push(ALPHABET[idx as usize] as char);
        }
        if !s.starts_with('-') {
            return s;
        }
    }
}

/// True once the broker answers an ApiVersions v0 request.
pub(crate) fn answers_api_versions(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let client = b"sluice-testkit";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // v0
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    if s.write_all(&frame).is_err() {
        return false;
    }
    let mut head = [0u8; 10];
    if s.read_exact(&mut head).is_err() {
        return false;
    }
    // correlation id 1, error code 0
    head[4..8] == 1i32.to_be_bytes() && head[8..10] == [0, 0]
}

/// Runs a Kafka CLI class with the jars in `lib`.
pub(crate) fn run_tool(lib: &Path, class: &str, args: &[&str]) -> Result<Output, TestkitError> {
    Command::new("java")
        .args(["-cp", &format!("{}/*", lib.display()), class])
        .args(args)
        .output()
        .map_err(io(format!("running {class}")))
}

/// True when a `java` runs.
pub(crate) fn java_available() -> bool {
    Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Writes `log4j.properties` into `dir` and returns the JVM flag that
/// selects it. The pinned jars bind SLF4J to reload4j, which logs nothing
/// without a configuration: a broker that exits at start-up (a port taken
/// between [`free_port`] and its bind, a bad property) would say nothing
/// of why. With this, its errors reach its captured stderr.
pub(crate) fn log_config_flag(dir: &Path) -> Result<String, TestkitError> {
    let path = dir.join("log4j.properties");
    std::fs::write(
        &path,
        "log4j.rootLogger=ERROR, stderr\n\
         log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n\
         log4j.appender.stderr.Target=System.err\n\
         log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
    )
    .map_err(io("writing log4j.properties"))?;
    Ok(format!("-Dlog4j.configuration=file:{}", path.display()))
}

/// True when a broker's start-up output says it could not bind a listener
/// port: another process took the port [`free_port`] found free before the
/// JVM bound it (tests run in parallel and open client connections, whose
/// ephemeral ports come from the same range). Starting again on fresh
/// ports is then the right answer; any other early exit is a real error.
pub(crate) fn lost_a_port_race(output: &str) -> bool {
    output.contains("Address already in use") || output.contains("BindException")
}

/// Collects a child's piped stdout and stderr into one string, on two threads.
pub(crate) fn capture_output(child: &mut Child) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let out = output.clone();
        thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    output
}

/// Runs `kafka.tools.StorageTool format` on `config` with `cluster_id`
/// (plus `extra` arguments such as `--standalone`).
pub(crate) fn format_storage(
    lib: &Path,
    config: &Path,
    cluster_id: &str,
    extra: &[&str],
) -> Result<(), TestkitError> {
    let format = Command::new("java")
        .args(["-cp", &format!("{}/*", lib.display())])
        .args(["kafka.tools.StorageTool", "format"])
        .args(extra)
        .args(["-t", cluster_id])
        .arg("-c")
        .arg(config)
        .output()
        .map_err(io("running kafka.tools.StorageTool"))?;
    if !format.status.success() {
        return Err(TestkitError::Exited {
            what: "kafka StorageTool format",
            status: format.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            ),
        });
    }
    Ok(())
}

impl ReferenceKafka {
    /// The directory with the pinned Kafka jars: `$SLUICE_KAFKA_LIB`, else
    /// `<workspace>/.cache/kafka/lib`. `None` when absent.
    pub fn lib_dir() -> Option<PathBuf> {
        let dir = match std::env::var_os("SLUICE_KAFKA_LIB") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/kafka/lib"),
        };
        let has_jars = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with("kafka_"))
            })
            .unwrap_or(false);
        has_jars.then_some(dir)
    }

    /// Formats and starts the reference Kafka and waits until it answers.
    /// `Ok(None)` = skipped (no jars or no `java`); tests should print that and return.
    pub fn start() -> Result<Option<Self>, TestkitError> {
        Self::start_with(&[])
    }

    /// Like [`ReferenceKafka::start`] with extra `server.properties` entries.
    pub fn start_with(extra: &[(&str, &str)]) -> Result<Option<Self>, TestkitError> {
        Self::start_inner(None, extra)
    }

    /// Like [`ReferenceKafka::start_with`] with one more listener named
    /// `protocol` (`SSL`, ...; mapped to that security protocol and
    /// advertised) on a free port: [`ReferenceKafka::listener_port`].
    /// `extra` supplies what the listener needs (`ssl.*` keys).
    pub fn start_with_listener(
        protocol: &str,
        extra: &[(&str, &str)],
    ) -> Result<Option<Self>, TestkitError> {
        Self::start_inner(Some(protocol), extra)
    }

    /// The port of the listener added by [`ReferenceKafka::start_with_listener`].
    pub fn listener_port(&self) -> Option<u16> {
        self.extra_port
    }

    fn start_inner(
        extra_listener: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Option<Self>, TestkitError> {
        let Some(lib) = Self::lib_dir() else {
            eprintln!(
                "reference Kafka skipped: no jars in .cache/kafka/lib (set SLUICE_KAFKA_LIB)"
            );
            return Ok(None);
        };
        if !java_available() {
            eprintln!("reference Kafka skipped: no `java` on PATH");
            return Ok(None);
        }
        let mut attempt = 1;
        loop {
            match Self::start_once(&lib, extra_listener, extra) {
                Err(TestkitError::Exited { output, .. })
                    if attempt < START_ATTEMPTS && lost_a_port_race(&output) =>
                {
                    eprintln!("reference Kafka: a chosen port was taken; starting again");
                    attempt += 1;
                }
                r => return r.map(Some),
            }
        }
    }

    fn start_once(
        lib: &Path,
        extra_listener: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        let lib = lib.to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("reference-kafka-")
            .tempdir()
            .map_err(io("creating the Kafka dir"))?;
        let port = free_port()?;
        let controller_port = free_port()?;
        let extra_port = extra_listener.map(|_| free_port()).transpose()?;
        let (more, more_map) = match (extra_listener, extra_port) {
            (Some(name), Some(p)) => (
                format!(",{name}://127.0.0.1:{p}"),
                format!(",{name}:{name}"),
            ),
            _ => (String::new(), String::new()),
        };
        let logs = dir.path().join("logs");
        let mut props = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{more}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}{more}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{more_map}\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n",
            logs.display()
        );
        for (k, v) in extra {
            props.push_str(&format!("{k}={v}\n"));
        }
        let config = dir.path().join("server.properties");
        std::fs::write(&config, props).map_err(io("writing server.properties"))?;

        format_storage(&lib, &config, &random_cluster_id(), &["--standalone"])?;

        let log_config = log_config_flag(dir.path())?;
        let mut child = Command::new("java")
            .args([
                "-Xms256m",
                "-Xmx1g",
                &log_config,
                "-cp",
                &format!("{}/*", lib.display()),
                "kafka.Kafka",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("starting kafka.Kafka"))?;
        let output = capture_output(&mut child);
        let mut kafka = ReferenceKafka {
            lib,
            dir,
            child: Some(child),
            port,
            extra_port,
            output,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if answers_api_versions(addr) {
                return Ok(kafka);
            }
            if let Some(c) = kafka.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(TestkitError::Exited {
                        what: "reference Kafka",
                        status: status.to_string(),
                        output: kafka.output(),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(TestkitError::NotReady {
                    what: "reference Kafka",
                    timeout: START_TIMEOUT,
                    output: kafka.output(),
                });
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// `127.0.0.1:port` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's working directory (server.properties, logs/).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the JVM printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Runs a Kafka CLI class (e.g. `org.apache.kafka.tools.TopicCommand`) with
    /// the pinned jars; `bootstrap` is any broker (this one or a Sluice).
    pub fn run_tool(&self, class: &str, args: &[&str]) -> Result<Output, TestkitError> {
        run_tool(&self.lib, class, args)
    }

    /// Stops the broker (SIGTERM, then SIGKILL if it does not exit in time).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ReferenceKafka {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_have_kafkas_form() {
        for _ in 0..200 {
            let id = random_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn free_ports_are_bindable() {
        let p = free_port().unwrap();
        assert_ne!(p, 0);
        TcpListener::bind(("127.0.0.1", p)).unwrap();
    }

    /// Kafka 4.1.2's own start-up lines (captured with the log
    /// configuration of [`log_config_flag`] from a broker whose client port
    /// another socket held): such an exit starts again; others do not.
    #[test]
    fn a_port_taken_before_the_bind_is_told_from_other_exits() {
        let taken = "[2026-12-07 18:27:56,590] ERROR Exiting Kafka due to fatal exception during startup. (kafka.Kafka$)\n\
            Caused by: org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:39111: Address already in use.\n\
            Caused by: java.net.BindException: Address already in use\n";
        assert!(lost_a_port_race(taken));
        let bad_config = "[2026-12-07 18:30:01,002] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)\n\
            org.apache.kafka.common.config.ConfigException: Missing required configuration \"node.id\"\n";
        assert!(!lost_a_port_race(bad_config));
        assert!(!lost_a_port_race(""));
    }

    #[test]
    fn the_log_configuration_sends_errors_to_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let flag = log_config_flag(dir.path()).unwrap();
        let path = flag.strip_prefix("-Dlog4j.configuration=file:").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("rootLogger=ERROR, stderr"), "{text}");
        assert!(text.contains("Target=System.err"), "{text}");
    }
}
