//! The test network: one Linux network namespace per node and one for the
//! workload client, each with a veth pair to a bridge in a test-owned hub
//! namespace, on a private /24. Every name starts with [`PREFIX`] and the
//! owning process id, so a later run removes what a killed run left behind
//! ([`cleanup_stale`]). Nothing is created in, or changes, the host's own
//! interfaces, routes or nftables ruleset: every `ip` call names a test
//! namespace and every `nft` call runs inside one.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::NemesisError;

/// The first characters of every namespace (and tmpfs mount) a run creates.
pub const PREFIX: &str = "snem-";
/// The private subnet inside the test network (only its namespaces see it).
pub const SUBNET: &str = "10.77.0";
/// The client namespace's address.
pub const CLIENT_ADDR: &str = "10.77.0.100";
/// The nftables table the faults add inside a node's namespace.
const TABLE: &str = "nemesis";
/// The nftables table of the delay proxy's redirect inside a node's namespace.
const PROXY_TABLE: &str = "nemesis_proxy";

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// Runs a command and returns its stdout; a non-zero exit is an error that
/// quotes its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NemesisError> {
    run_with_input(program, args, None)
}

fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, NemesisError> {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| NemesisError::Io {
        what: format!("running {program}"),
        source,
    })?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| NemesisError::Io {
                what: format!("writing to {program}"),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NemesisError::Io {
            what: format!("waiting for {program}"),
            source,
        })?;
    if !out.status.success() {
        return Err(NemesisError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why namespaces cannot be used here, or `None` when they can: the check
/// that decides whether a nemesis test runs or skips.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (run as root or skip)".into());
    }
    if run("ip", &["netns", "list"]).is_err() {
        return Some(
            "`ip netns` does not work here (iproute2 missing or no namespace support)".into(),
        );
    }
    None
}

/// True when the `nft` tool exists (scripts/setup installs Debian's `nftables`).
pub fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True while process `pid` exists and is not a zombie. (`/proc/N` also
/// answers for a thread id N, so the thread-group id must be N itself.)
fn pid_alive(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let state = field("State:");
    field("Tgid:") == pid.to_string() && !state.starts_with('Z') && !state.starts_with('X')
}

/// The owner pid encoded in a name `snem-<pid>-...`.
fn owner_of(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Removes namespaces (killing what runs in them) and tmpfs mounts that a
/// run whose process no longer exists left behind. Returns what it removed.
pub fn cleanup_stale() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
                continue;
            };
            if owner_of(source).is_some_and(|pid| !pid_alive(pid))
                && run("umount", &["-l", target]).is_ok()
            {
                removed.push(format!("mount {target}"));
            }
        }
    }
    // Run directories (configuration and output; the disks were unmounted above).
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner_of(&name).is_some_and(|pid| !pid_alive(pid))
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                removed.push(format!("run dir {}", e.path().display()));
            }
        }
    }
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return removed;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if owner_of(name).is_some_and(|pid| !pid_alive(pid)) {
            kill_all_in(name);
            if run("ip", &["netns", "del", name]).is_ok() {
                removed.push(format!("netns {name}"));
            }
        }
    }
    removed
}

/// SIGKILLs every process in namespace `ns` (SIGCONT first, so stopped
/// ones die too).
fn kill_all_in(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain signals to processes of a test namespace.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The test network. Removed (processes in it killed) on drop, which also
/// runs when a test panics.
pub struct TestNet {
    stem: String,
    nodes: usize,
    created: Vec<String>,
}

impl TestNet {
    /// Creates a hub with a bridge, `nodes` node namespaces (addresses
    /// `10.77.0.11`, `.12`, ...) and a client namespace (`10.77.0.100`).
    pub fn create(nodes: usize) -> Result<Self, NemesisError> {
        assert!((1..=9).contains(&nodes), "1 to 9 nodes");
        let stem = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_NET.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = TestNet {
            stem,
            nodes,
            created: Vec::new(),
        };
        net.build()?;
        Ok(net)
    }

    fn build(&mut self) -> Result<(), NemesisError> {
        let hub = self.hub();
        self.add_ns(&hub)?;
        run("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        let mut members: Vec<(String, String)> = (1..=self.nodes)
            .map(|i| (self.node_ns(i), self.node_addr(i)))
            .collect();
        members.push((self.client_ns(), CLIENT_ADDR.to_string()));
        for (i, (ns, addr)) in members.iter().enumerate() {
            self.add_ns(ns)?;
            let port = format!("v{i}");
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &port, "master", "br0", "up"],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn add_ns(&mut self, name: &str) -> Result<(), NemesisError> {
        run("ip", &["netns", "add", name])?;
        self.created.push(name.to_string());
        Ok(())
    }

    /// The name stem every namespace and mount of this network starts with.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.stem)
    }

    /// Node `i`'s namespace (1-based).
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.stem)
    }

    /// Node `i`'s address (1-based).
    pub fn node_addr(&self, i: usize) -> String {
        format!("{SUBNET}.{}", 10 + i)
    }

    pub fn client_ns(&self) -> String {
        format!("{}-cl", self.stem)
    }

    /// Moves the calling thread (and the threads and processes it starts
    /// afterwards) into the client namespace. Network namespaces are per
    /// thread, so the rest of the process is unaffected.
    pub fn enter_client(&self) -> Result<(), NemesisError> {
        enter(&self.client_ns())
    }
}

/// Moves the calling thread into namespace `ns` (see [`TestNet::enter_client`]).
pub fn enter(ns: &str) -> Result<(), NemesisError> {
    {
        let path = format!("/var/run/netns/{ns}");
        let file = File::open(&path).map_err(|source| NemesisError::Io {
            what: format!("opening {path}"),
            source,
        })?;
        // SAFETY: setns on a valid namespace fd; it affects this thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NemesisError::Io {
                what: format!("setns into {path}"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl TestNet {
    /// Replaces node `i`'s fault rules: it drops every packet arriving from
    /// `from` (node numbers; 0 = the client). Empty `from` heals the node.
    pub fn drop_from(&self, i: usize, from: &[usize]) -> Result<(), NemesisError> {
        let ns = self.node_ns(i);
        // Only this namespace's own ruleset: never the host's.
        let _ = run(
            "ip",
            &[
                "netns", "exec", &ns, "nft", "delete", "table", "inet", TABLE,
            ],
        );
        if from.is_empty() {
            return Ok(());
        }
        let addrs: Vec<String> = from
            .iter()
            .map(|&j| {
                if j == 0 {
                    CLIENT_ADDR.to_string()
                } else {
                    self.node_addr(j)
                }
            })
            .collect();
        let rules = format!(
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
            addrs.join(", ")
        );
        run_with_input(
            "ip",
            &["netns", "exec", &ns, "nft", "-f", "-"],
            Some(&rules),
        )?;
        Ok(())
    }

    /// Sends node `i`'s own connections to each `(destination, port)` to
    /// `127.0.0.1:port` in its namespace (the delay proxy's listener of
    /// that route, [`crate::proxy`]), except those of sockets marked `mark`
    /// (the proxy's own). A table of its own: [`TestNet::drop_from`]
    /// replaces only the fault table.
    pub fn redirect_to_proxy(
        &self,
        i: usize,
        routes: &[(std::net::SocketAddrV4, u16)],
        mark: u32,
    ) -> Result<(), NemesisError> {
        let rules: String = routes
            .iter()
            .map(|(dest, port)| {
                format!(
                    "    ip daddr {} tcp dport {} meta mark != {mark:#x} redirect to :{port}\n",
                    dest.ip(),
                    dest.port()
                )
            })
            .collect();
        let table = format!(
            "table ip {PROXY_TABLE} {{\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{rules}  }}\n}}\n"
        );
        run_with_input(
            "ip",
            &["netns", "exec", &self.node_ns(i), "nft", "-f", "-"],
            Some(&table),
        )?;
        Ok(())
    }

    /// Every node's current fault rules, for the run log.
    pub fn rules(&self, i: usize) -> String {
        run(
            "ip",
            &["netns", "exec", &self.node_ns(i), "nft", "list", "ruleset"],
        )
        .unwrap_or_default()
    }

    /// Kills every process in the test namespaces and deletes them.
    pub fn destroy(&mut self) {
        for ns in self.created.iter().rev() {
            kill_all_in(ns);
        }
        for ns in self.created.drain(..).rev() {
            let _ = run("ip", &["netns", "del", &ns]);
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner_of("snem-1234-0-n1"), Some(1234));
        assert_eq!(owner_of("snem-77-3-hub"), Some(77));
        assert_eq!(owner_of("other-1234-n1"), None);
        assert_eq!(owner_of("snem-x-n1"), None);
    }
}
