//! [`SluiceProcess`]: the real `sluice` binary in a child process.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{io, TestkitError};

/// How long a start may take on a slow, busy machine (recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a clean shutdown may take before the test gives up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Finds the `sluice` binary: `$SLUICE_BIN`, else `target/<profile>/sluice`
/// next to the running test executable (`target/<profile>/deps/…`).
/// Integration tests of the `sluice` crate should pass
/// `env!("CARGO_BIN_EXE_sluice")` to [`SluiceProcess::start`] instead.
pub fn locate_sluice_binary() -> Result<PathBuf, TestkitError> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let candidate = dir.join("sluice");
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate);
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for profile in ["debug", "release"] {
        let candidate = manifest.join("../../target").join(profile).join("sluice");
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    Err(TestkitError::BinaryNotFound(tried))
}

/// A running `sluice serve` on `127.0.0.1:0` with its own data directory.
/// Killed (SIGKILL) on drop if still running.
pub struct SluiceProcess {
    binary: PathBuf,
    data_dir: PathBuf,
    /// Keeps the temporary data dir alive (None when the caller gave a dir).
    _temp: Option<tempfile::TempDir>,
    overrides: Vec<(String, String)>,
    /// Extra arguments after `serve` (e.g. `--config FILE`).
    args: Vec<String>,
    child: Option<Child>,
    bootstrap: String,
    output: Arc<Mutex<String>>,
    /// How long a start may take before it is given up ([`START_TIMEOUT`]).
    start_timeout: Duration,
}

impl SluiceProcess {
    /// Starts `binary` on an ephemeral loopback port with a fresh temporary
    /// data dir plus `overrides` (Kafka config keys), and waits for its
    /// `listening on PLAINTEXT://127.0.0.1:N` line.
    pub fn start(
        binary: impl AsRef<Path>,
        overrides: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        let temp = tempfile::Builder::new()
            .prefix("sluice-test-")
            .tempdir()
            .map_err(io("creating a temporary data dir"))?;
        let data_dir = temp.path().join("data");
        Self::start_inner(binary.as_ref(), data_dir, Some(temp), overrides)
    }

    /// Like [`SluiceProcess::start`] with the binary found by [`locate_sluice_binary`].
    pub fn start_default(overrides: &[(&str, &str)]) -> Result<Self, TestkitError> {
        Self::start(locate_sluice_binary()?, overrides)
    }

    /// Starts on an existing data directory (kept after the process ends).
    pub fn start_in(
        binary: impl AsRef<Path>,
        data_dir: impl Into<PathBuf>,
        overrides: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        Self::start_inner(binary.as_ref(), data_dir.into(), None, overrides)
    }

    /// Like [`SluiceProcess::start`] with extra `serve` arguments, e.g.
    /// `["--config", "server.properties"]` (the port-0 listener, the temporary
    /// data dir and `overrides` still override the file).
    pub fn start_with_args(
        binary: impl AsRef<Path>,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        let temp = tempfile::Builder::new()
            .prefix("sluice-test-")
            .tempdir()
            .map_err(io("creating a temporary data dir"))?;
        let data_dir = temp.path().join("data");
        let mut p = Self::unstarted(binary.as_ref(), data_dir, Some(temp), overrides);
        p.args = args.iter().map(|a| a.to_string()).collect();
        p.spawn()?;
        Ok(p)
    }

    fn unstarted(
        binary: &Path,
        data_dir: PathBuf,
        temp: Option<tempfile::TempDir>,
        overrides: &[(&str, &str)],
    ) -> Self {
        SluiceProcess {
            binary: binary.to_path_buf(),
            data_dir,
            _temp: temp,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: Vec::new(),
            child: None,
            bootstrap: String::new(),
            output: Arc::new(Mutex::new(String::new())),
            start_timeout: START_TIMEOUT,
        }
    }

    /// Later (re)starts give up after `timeout` instead of
    /// [`START_TIMEOUT`]: for a start the test expects to fail.
    pub fn set_start_timeout(&mut self, timeout: Duration) {
        self.start_timeout = timeout;
    }

    fn start_inner(
        binary: &Path,
        data_dir: PathBuf,
        temp: Option<tempfile::TempDir>,
        overrides: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        let mut p = Self::unstarted(binary, data_dir, temp, overrides);
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .args(&self.args)
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.display()))
            // Parallel test brokers must not compete for the default metrics port.
            .arg("--override")
            .arg("sluice.metrics.listener=127.0.0.1:0");
        for (k, v) in &self.overrides {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("SLUICE_LOG").is_none() {
            cmd.env("SLUICE_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .map_err(io(format!("spawning {}", self.binary.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        self.output = Arc::new(Mutex::new(String::new()));

        let (tx, rx) = mpsc::channel::<String>();
        let out = self.output.clone();
        // A controller-only node (process.roles=controller) has no client
        // listener: its controller listener is its address. A node with
        // the broker role is reachable once its client listener is (a
        // combined node announces its controller listener first).
        let controller_only = self
            .overrides
            .iter()
            .any(|(k, v)| k == "process.roles" && !v.contains("broker"));
        // The first client listener of `listeners` (PLAINTEXT unless a
        // test names its own, e.g. a cluster whose only listener is SASL_SSL).
        let controller_names = self
            .overrides
            .iter()
            .find(|(k, _)| k == "controller.listener.names")
            .map_or("CONTROLLER".to_string(), |(_, v)| v.to_ascii_uppercase());
        let client_listener = self
            .overrides
            .iter()
            .find(|(k, _)| k == "listeners")
            .and_then(|(_, v)| {
                v.split(',')
                    .filter_map(|l| {
                        l.split_once("://")
                            .map(|(n, _)| n.trim().to_ascii_uppercase())
                    })
                    .find(|n| !controller_names.split(',').any(|c| c.trim() == n))
            })
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        let wanted = if controller_only {
            "listening on CONTROLLER://".to_string()
        } else {
            format!("listening on {client_listener}://")
        };
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&format!("{line}\n"));
                let addr = line.strip_prefix(wanted.as_str());
                if let Some(addr) = addr {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let err = self.output.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let deadline = Instant::now() + self.start_timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    self.bootstrap = addr;
                    self.child = Some(child);
                    return Ok(());
                }
                Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // give the reader threads a moment to collect the last words
                        thread::sleep(Duration::from_millis(100));
                        return Err(TestkitError::Exited {
                            what: "sluice",
                            status: status.to_string(),
                            output: self.output(),
                        });
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(TestkitError::NotReady {
                            what: "sluice",
                            timeout: self.start_timeout,
                            output: self.output(),
                        });
                    }
                }
            }
        }
    }

    /// `host:port` to give clients as bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The broker's `log.dirs`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9`: no shutdown work at all (no flush, no clean marker).
    pub fn kill(&mut self) -> Result<(), TestkitError> {
        let mut child = self
            .child
            .take()
            .ok_or(TestkitError::NotRunning("sluice"))?;
        child.kill().map_err(io("SIGKILL sluice"))?;
        child.wait().map_err(io("waiting for sluice"))?;
        Ok(())
    }

    /// SIGTERM and wait for the clean shutdown to finish.
    pub fn terminate(&mut self) -> Result<ExitStatus, TestkitError> {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// SIGINT (Ctrl-C) and wait for the clean shutdown to finish.
    pub fn interrupt(&mut self) -> Result<ExitStatus, TestkitError> {
        self.signal_and_wait(libc::SIGINT)
    }

    fn signal_and_wait(&mut self, signal: libc::c_int) -> Result<ExitStatus, TestkitError> {
        let mut child = self
            .child
            .take()
            .ok_or(TestkitError::NotRunning("sluice"))?;
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        if rc != 0 {
            return Err(io("signalling sluice")(std::io::Error::last_os_error()));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(io("waiting for sluice"))? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestkitError::NotReady {
                    what: "sluice shutdown",
                    timeout: STOP_TIMEOUT,
                    output: self.output(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`SluiceProcess::restart`] with `changes` to its config keys (each
    /// replaces the key's old value).
    pub fn restart_with(&mut self, changes: &[(&str, &str)]) -> Result<(), TestkitError> {
        for (k, v) in changes {
            self.overrides.retain(|(ok, _)| ok != k);
            self.overrides.push((k.to_string(), v.to_string()));
        }
        self.restart()
    }

    /// Starts the broker again on the same data dir (a new ephemeral port:
    /// read [`SluiceProcess::bootstrap`] again). Kills a still-running one first.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        if self.child.is_some() {
            self.kill()?;
        }
        self.spawn()
    }
}

/// How much of a broker's output a failing test prints (its end).
const OUTPUT_ON_FAILURE: usize = 64 * 1024;

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        if thread::panicking() {
            // A failing test shows what the broker said last (its log of a
            // fence, a reload or an error), under the test's own output.
            let out = self.output();
            let mut from = out.len().saturating_sub(OUTPUT_ON_FAILURE);
            while !out.is_char_boundary(from) {
                from += 1;
            }
            eprintln!(
                "---- the end of the broker's output ({} of {} bytes) ----\n{}",
                out.len() - from,
                out.len(),
                &out[from..]
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
