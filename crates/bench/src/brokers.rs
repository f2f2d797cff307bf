//! Starting and stopping the systems under test: Sluice (the release binary), the
//! reference Apache Kafka (through `clients/reference-kafka`, with the bench's JVM
//! options) and the sink (this binary's `sink` subcommand, as its own process so its
//! CPU is accounted apart from the load generator's).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Sluice,
    Kafka,
    Sink,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Sluice => "sluice",
            Target::Kafka => "kafka",
            Target::Sink => "sink",
        }
    }
}

/// JVM options for the reference Kafka in the bench (the like-for-like setup).
pub const KAFKA_JVM_OPTS: &str = "-Xms1G -Xmx1G -XX:+UseG1GC";

pub struct RunningBroker {
    pub target: Target,
    pub bootstrap: String,
    pub pid: u32,
    /// Where partition directories live (`<topic>-<partition>/`); `None` for the sink.
    pub data_dir: Option<PathBuf>,
    child: Option<Child>,
    kafka_dir: Option<PathBuf>,
    kafka_script: Option<PathBuf>,
}

/// Spawn a process that prints `listening on PLAINTEXT://host:port` and wait for that
/// line; its output goes on into `log`.
fn spawn_listening(mut cmd: Command, log: &Path, what: &str) -> Result<(Child, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {what}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let logf = std::fs::File::create(log).with_context(|| format!("create {log:?}"))?;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        let mut logf = logf.try_clone()?;
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(logf, "{line}");
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let addr = l
                    .trim_start_matches("PLAINTEXT://")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                if addr.is_empty() {
                    bail!("{what}: cannot parse listening line {l:?}");
                }
                return Ok((child, addr));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(st) = child.try_wait()? {
                    bail!("{what} exited during start ({st}); log: {log:?}");
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("{what} did not print a listening line within 60 s; log: {log:?}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = child.wait()?;
                bail!("{what} exited during start ({st}); log: {log:?}");
            }
        }
    }
}

impl RunningBroker {
    /// Start Sluice on a loopback port 0 with an empty `dir`.
    pub fn start_sluice(
        bin: &Path,
        dir: &Path,
        extra: &[(String, String)],
    ) -> Result<RunningBroker> {
        reset_dir(dir)?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", data.display()));
        for (k, v) in extra {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let (child, bootstrap) = spawn_listening(cmd, &dir.join("sluice.log"), "sluice")?;
        Ok(RunningBroker {
            target: Target::Sluice,
            bootstrap,
            pid: child.id(),
            data_dir: Some(data),
            child: Some(child),
            kafka_dir: None,
            kafka_script: None,
        })
    }

    /// Start the sink (`<this binary> sink`).
    pub fn start_sink(dir: &Path) -> Result<RunningBroker> {
        std::fs::create_dir_all(dir)?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("sink").arg("--listen").arg("127.0.0.1:0");
        let (child, bootstrap) = spawn_listening(cmd, &dir.join("sink.log"), "sink")?;
        Ok(RunningBroker {
            target: Target::Sink,
            bootstrap,
            pid: child.id(),
            data_dir: None,
            child: Some(child),
            kafka_dir: None,
            kafka_script: None,
        })
    }

    /// Start the sink as the page-cache write floor: it writes every produce request's
    /// records into `write_dir` (`<this binary> sink --write-dir`).
    pub fn start_sink_writing(dir: &Path, write_dir: &Path) -> Result<RunningBroker> {
        std::fs::create_dir_all(dir)?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("sink")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--write-dir")
            .arg(write_dir);
        let (child, bootstrap) = spawn_listening(cmd, &dir.join("sink.log"), "floor sink")?;
        Ok(RunningBroker {
            target: Target::Sink,
            bootstrap,
            pid: child.id(),
            data_dir: Some(write_dir.to_path_buf()),
            child: Some(child),
            kafka_dir: None,
            kafka_script: None,
        })
    }

    /// Start the sink serving the topic layouts in `shapes_file` (JSON, see
    /// `sink::TopicShapes`) from the start: the consume ceiling for a broker's topics.
    pub fn start_sink_serving(dir: &Path, shapes_file: &Path) -> Result<RunningBroker> {
        std::fs::create_dir_all(dir)?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("sink")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--serve")
            .arg(shapes_file);
        let (child, bootstrap) = spawn_listening(cmd, &dir.join("sink-serve.log"), "serving sink")?;
        Ok(RunningBroker {
            target: Target::Sink,
            bootstrap,
            pid: child.id(),
            data_dir: None,
            child: Some(child),
            kafka_dir: None,
            kafka_script: None,
        })
    }

    /// Start the reference Kafka with an empty `dir` through `script`
    /// (`clients/reference-kafka start DIR`), heap and GC from [`KAFKA_JVM_OPTS`].
    pub fn start_kafka(script: &Path, dir: &Path) -> Result<RunningBroker> {
        reset_dir(dir)?;
        let out = Command::new(script)
            .arg("start")
            .arg(dir)
            .env("KAFKA_HEAP_OPTS", KAFKA_JVM_OPTS)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("run {script:?}"))?;
        if !out.status.success() {
            bail!("reference Kafka failed to start ({})", out.status);
        }
        let bootstrap = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .ok_or_else(|| anyhow!("reference-kafka printed no address"))?
            .trim()
            .to_string();
        let pid: u32 = std::fs::read_to_string(dir.join("kafka.pid"))?
            .trim()
            .parse()
            .context("kafka.pid")?;
        // Confirm the JVM really runs with the bench's heap options.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        for opt in KAFKA_JVM_OPTS.split_whitespace() {
            if !cmdline.contains(opt) {
                eprintln!("warning: Kafka JVM was not started with {opt} (cmdline: {cmdline})");
            }
        }
        Ok(RunningBroker {
            target: Target::Kafka,
            bootstrap,
            pid,
            data_dir: Some(dir.join("data")),
            child: None,
            kafka_dir: Some(dir.to_path_buf()),
            kafka_script: Some(script.to_path_buf()),
        })
    }

    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, then SIGKILL after 20 s.
            // SAFETY: kill(2) with our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            for _ in 0..200 {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not exit within 20 s of SIGTERM; killed",
                self.target.name()
            );
        }
        if let (Some(dir), Some(script)) = (self.kafka_dir.take(), self.kafka_script.take()) {
            let st = Command::new(&script).arg("stop").arg(&dir).status()?;
            if !st.success() {
                bail!("reference-kafka stop failed ({st})");
            }
        }
        Ok(())
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Remove and recreate `dir` (every run starts from empty data).
pub fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {dir:?}"))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}
