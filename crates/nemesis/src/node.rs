//! One broker process inside its node namespace (`ip netns exec`), with its
//! data on a small tmpfs of its own so a fault can fill the disk. Output goes
//! to `node-N/output.log` in the run directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::netns::run;
use crate::NemesisError;

/// How one node's process is started: a program and its arguments.
#[derive(Clone, Debug)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A broker node: its namespace, its disk and its process (when running).
pub struct Node {
    pub id: usize,
    pub ns: String,
    pub addr: String,
    /// The node's directory on the real disk (configuration, output).
    pub dir: PathBuf,
    /// The tmpfs mount point; the broker's data lives in `disk/data`.
    pub disk: PathBuf,
    launch: Launch,
    child: Option<Child>,
    paused: bool,
    mounted: bool,
    /// Exits the nemesis did not cause (a crash, a storage halt), with
    /// their status, since the last [`Node::take_exits`].
    exits: Vec<String>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NemesisError {
    let what = what.into();
    move |source| NemesisError::Io { what, source }
}

impl Node {
    /// Creates the node's directory and mounts its tmpfs (`disk_size`, e.g.
    /// `512m`; the mount's source names the run, for stale cleanup).
    pub fn new(
        id: usize,
        ns: String,
        addr: String,
        dir: PathBuf,
        stem: &str,
        disk_size: &str,
    ) -> Result<Self, NemesisError> {
        let disk = dir.join("disk");
        std::fs::create_dir_all(&disk).map_err(io("creating a node dir"))?;
        let source = format!("{stem}-disk{id}");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={disk_size}"),
                &source,
                &disk.to_string_lossy(),
            ],
        )?;
        std::fs::create_dir_all(disk.join("data")).map_err(io("creating the data dir"))?;
        Ok(Node {
            id,
            ns,
            addr,
            dir,
            disk,
            launch: Launch {
                program: PathBuf::new(),
                args: Vec::new(),
            },
            child: None,
            paused: false,
            mounted: true,
            exits: Vec::new(),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.disk.join("data")
    }

    pub fn set_launch(&mut self, launch: Launch) {
        self.launch = launch;
    }

    /// Starts the process in the node's namespace (does not wait for it to
    /// serve: a KRaft node opens its listener only once a quorum forms).
    pub fn start(&mut self) -> Result<(), NemesisError> {
        if self.is_running() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("output.log"))
            .map_err(io("opening a node log"))?;
        let err = log.try_clone().map_err(io("opening a node log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&self.launch.program)
            .args(&self.launch.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting node {}", self.id)))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// True while the process exists (paused counts as running). A process
    /// found gone by itself is reaped and its exit kept ([`Node::take_exits`]).
    pub fn is_running(&mut self) -> bool {
        let Some(c) = self.child.as_mut() else {
            return false;
        };
        match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exits.push(status.to_string());
                self.child = None;
                self.paused = false;
                false
            }
            Err(_) => false,
        }
    }

    /// The exits the nemesis did not cause since the last call.
    pub fn take_exits(&mut self) -> Vec<String> {
        std::mem::take(&mut self.exits)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn signal(&mut self, sig: i32) -> bool {
        match self.child.as_ref() {
            Some(c) => {
                // SAFETY: a signal to our own child (`ip netns exec` execs
                // the broker, so the pid is the broker's).
                unsafe { libc::kill(c.id() as i32, sig) == 0 }
            }
            None => false,
        }
    }

    /// `kill -9` and reap. False when it was not running.
    pub fn kill(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        self.paused = false;
        true
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> bool {
        let ok = self.is_running() && self.signal(libc::SIGSTOP);
        self.paused |= ok;
        ok
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> bool {
        let was = self.paused;
        if was {
            self.signal(libc::SIGCONT);
        }
        self.paused = false;
        was
    }

    /// SIGTERM and wait up to `timeout` for a clean exit, then `kill -9`.
    /// True when it exited by itself.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        self.resume();
        if !self.signal(libc::SIGTERM) {
            self.child = None;
            return false;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // Not is_running: this exit is the one asked for.
            let exited = match self.child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                self.child = None;
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        false
    }

    /// Fills the node's disk: a file takes every free byte.
    pub fn fill_disk(&self) -> Result<u64, NemesisError> {
        let free = free_bytes(&self.disk)?;
        let path = self.disk.join("fill");
        let file = File::create(&path).map_err(io("creating the disk filler"))?;
        // fallocate takes the space at once; on tmpfs it is real memory, so
        // the mount's size bounds it.
        // SAFETY: a valid fd and sizes.
        let rc =
            unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, free as i64) };
        if rc != 0 {
            // Fall back to writing until ENOSPC.
            use std::io::Write;
            let mut f = file;
            let block = vec![0u8; 1 << 20];
            while f.write_all(&block).is_ok() {}
        }
        Ok(free)
    }

    /// Removes the filler.
    pub fn free_disk(&self) -> bool {
        std::fs::remove_file(self.disk.join("fill")).is_ok()
    }

    /// The last `n` bytes of the node's output.
    pub fn output_tail(&self, n: usize) -> String {
        let text = std::fs::read(self.dir.join("output.log")).unwrap_or_default();
        String::from_utf8_lossy(&text[text.len().saturating_sub(n)..]).into_owned()
    }

    /// Kills the process and unmounts the disk.
    pub fn destroy(&mut self) {
        self.resume();
        self.kill();
        if self.mounted {
            let _ = run("umount", &["-l", &self.disk.to_string_lossy()]);
            self.mounted = false;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn free_bytes(path: &Path) -> Result<u64, NemesisError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in a path");
    // SAFETY: statvfs into a zeroed struct with a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(NemesisError::Io {
            what: format!("statvfs {}", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}
