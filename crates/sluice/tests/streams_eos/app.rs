//! One run of the Streams application (`clients/java/streams.sh`), its
//! log kept for failures.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::root;
use super::{Setup, APP_ID, INPUT, OUTPUT, STEP};

/// One run of the Streams application (the JVM itself: streams.sh execs it).
pub(crate) struct App {
    child: Child,
    /// Everything every run printed, each run under a header.
    log: Arc<Mutex<String>>,
    /// Where this run's lines start in `log`.
    from: usize,
}

impl App {
    pub(crate) fn start(setup: &Setup<'_>, state_dir: &str, log: &Arc<Mutex<String>>) -> App {
        let from = {
            let mut l = log.lock().unwrap();
            l.push_str("\n==== application run ====\n");
            l.len()
        };
        let mut child = Command::new(root().join("clients/java/streams.sh"))
            .args(["--bootstrap", setup.bootstrap, "--app-id", APP_ID])
            .args([
                "--input",
                INPUT,
                "--output",
                OUTPUT,
                "--state-dir",
                state_dir,
            ])
            .args(["--replication", &setup.replication.to_string()])
            .args(["--store", setup.store])
            .args([
                "--guarantee",
                "exactly_once_v2",
                "--commit-interval-ms",
                "100",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("clients/java/streams.sh starts");
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        App {
            child,
            log: log.clone(),
            from,
        }
    }

    pub(crate) fn output(&self) -> String {
        self.log.lock().unwrap()[self.from..].to_string()
    }

    /// Panics (with the run's output) when the application has exited.
    pub(crate) fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what}: the Streams application exited ({status}):\n{}",
                tail(&self.output(), 60)
            );
        }
    }

    /// Waits until the application reports the RUNNING state.
    pub(crate) fn wait_running(&mut self) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.output().contains("-> RUNNING") {
                return t0.elapsed();
            }
            self.assert_alive("waiting for RUNNING");
            assert!(
                t0.elapsed() < STEP,
                "the application never reached RUNNING:\n{}",
                tail(&self.output(), 60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of the JVM.
    pub(crate) fn kill9(mut self) {
        self.assert_alive("before kill -9");
        self.child.kill().expect("SIGKILL the application");
        self.child.wait().expect("reap the application");
    }

    /// SIGTERM: Streams closes (committing its last transaction); asserts a
    /// clean exit.
    pub(crate) fn terminate(mut self) {
        self.assert_alive("before SIGTERM");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let out = self.output();
                assert!(
                    status.success() || out.contains("CLOSED"),
                    "the application did not close cleanly ({status}):\n{}",
                    tail(&out, 60)
                );
                assert!(!out.contains("FAIL streams"), "{}", tail(&out, 60));
                return;
            }
            if t0.elapsed() > STEP {
                let _ = self.child.kill();
                panic!(
                    "the application did not stop after SIGTERM:\n{}",
                    tail(&self.output(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes the application's output to `path` when the test ends, passed
/// or failed (`target/streams-eos/<test>.log`).
pub(crate) struct KeepLog {
    pub(crate) path: std::path::PathBuf,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Drop for KeepLog {
    fn drop(&mut self) {
        let text = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&self.path, text);
        println!("application output: {}", self.path.display());
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
