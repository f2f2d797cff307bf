//! Client subcommands of the `sluice` binary (`topic`, `produce`, `consume`,
//! `group`, `elect-leaders`, `reassign`, `cluster`, `console`, `config docs`). They
//! speak the Kafka protocol (through librdkafka, the `rdkafka` crate, or as
//! raw requests in [`raw`] for the admin APIs librdkafka does not expose),
//! so they work against any Kafka-compatible broker, not only Sluice.
//!
//! Exit codes a script can rely on: 0 success, 1 the operation failed (the
//! broker refused it or something does not exist), 2 invalid command line
//! (clap), 3 the cluster could not be reached or did not answer in time.

pub mod acl;
pub mod client_security;
pub mod cluster;
pub mod cluster_start;
pub mod config_docs;
pub mod console;
pub mod consume;
pub mod election;
pub mod features;
pub mod format;
pub mod group;
pub mod metrics;
pub mod produce;
pub mod quotas;
pub mod raw;
pub mod reassign;
pub mod storage;
pub mod tls;
pub mod topic;
pub mod txn;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

/// Exit code: the operation failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the cluster could not be reached or timed out.
pub const EXIT_UNREACHABLE: u8 = 3;

/// An error that carries its exit code (anything else exits with 1).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// The exit code for an error returned by a subcommand.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<Unreachable>().is_some()) {
        return EXIT_UNREACHABLE;
    }
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<KafkaError>() {
            if is_transport(k) {
                return EXIT_UNREACHABLE;
            }
        }
    }
    EXIT_FAILED
}

pub(crate) fn is_transport(e: &KafkaError) -> bool {
    let code = match e {
        KafkaError::AdminOp(c) => Some(*c),
        other => other.rdkafka_error_code(),
    };
    matches!(
        code,
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// Log output options of the binary.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log level or filter (e.g. `debug`, `sluice_broker=trace`); default: RUST_LOG, else info for the broker, warn for client commands.
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogArgs {
    /// Installs the global tracing subscriber (logs go to stderr).
    pub fn init(&self, default_level: &str) {
        use tracing_subscriber::EnvFilter;
        // librdkafka's own log lines (connection retries) are noise for a
        // CLI user; --log-level librdkafka=info brings them back.
        let default_level = if default_level == "warn" {
            "warn,librdkafka=off,rdkafka=off"
        } else {
            default_level
        };
        let filter = match &self.log_level {
            Some(level) => EnvFilter::try_new(level).unwrap_or_else(|e| {
                eprintln!("warning: invalid --log-level {level:?} ({e}); using {default_level}");
                EnvFilter::new(default_level)
            }),
            None => EnvFilter::try_from_env("SLUICE_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false);
        match self.log_format {
            LogFormat::Json => builder.json().with_current_span(false).init(),
            LogFormat::Text => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
        }
    }
}

/// How to reach the cluster; every client subcommand flattens this.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(
        long,
        short = 'b',
        visible_alias = "bootstrap-server",
        value_name = "HOST:PORT[,..]",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// How long to wait for the cluster to answer a request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
    /// Kafka client properties for a TLS or SASL listener, as Kafka's
    /// tools take them: security.protocol, sasl.mechanism (PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512), sasl.jaas.config, and
    /// ssl.truststore.type=PEM with ssl.truststore.location or
    /// ssl.truststore.certificates.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
}

impl ConnectArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// The timeout as a request's `timeout_ms` field.
    pub fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout().as_millis()).unwrap_or(i32::MAX)
    }

    /// A raw protocol connection to the first bootstrap broker that answers
    /// (exit code 3 when none does).
    pub fn raw(&self) -> anyhow::Result<raw::RawConnection> {
        let security = self.security()?;
        raw::RawConnection::connect_with(&self.brokers, self.timeout(), &security.raw())
            .map_err(|e| self.unreachable(format!("{e:#}")))
    }

    /// The `--command-config` settings (PLAINTEXT without one).
    pub fn security(&self) -> anyhow::Result<client_security::ClientSecurity> {
        match &self.command_config {
            Some(path) => client_security::ClientSecurity::load(path),
            None => Ok(Default::default()),
        }
    }

    /// A raw protocol connection to one broker of the cluster (`host:port`),
    /// with this command's timeout.
    pub fn raw_to(&self, broker: &str) -> anyhow::Result<raw::RawConnection> {
        let security = self.security()?;
        raw::RawConnection::connect_with(broker, self.timeout(), &security.raw()).map_err(|e| {
            anyhow::Error::new(Unreachable(format!(
                "cannot reach broker {broker} within {} s: {e:#}",
                self.timeout
            )))
        })
    }

    /// Client config shared by every client the CLI creates.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "sluice-cli")
            .set("socket.timeout.ms", self.timeout().as_millis().to_string())
            .set("log_level", "3");
        match self.security() {
            Ok(security) => {
                for (k, v) in security.librdkafka() {
                    c.set(k, v);
                }
            }
            // The raw connection reports it; librdkafka then fails to connect.
            Err(e) => tracing::warn!("--command-config: {e:#}"),
        }
        c
    }

    /// The error for a cluster that does not answer.
    pub fn unreachable(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(Unreachable(format!(
            "cannot reach the cluster at {} within {} s: {e}",
            self.brokers, self.timeout
        )))
    }

    /// Maps an rdkafka error: transport failures become [`Unreachable`].
    pub fn map_err(&self, what: &str, e: KafkaError) -> anyhow::Error {
        if is_transport(&e) {
            self.unreachable(format!("{what}: {e}"))
        } else {
            anyhow::anyhow!("{what}: {e}")
        }
    }
}

/// A single-threaded async runtime for rdkafka's admin futures.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A flag set on the first SIGINT or SIGTERM. A second one exits at once (130).
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let rt = runtime()?;
    // Register inside the runtime before returning so no early signal is lost.
    let (mut sigint, mut sigterm) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        _ = sigint.recv() => {},
                        _ = sigterm.recv() => {},
                    }
                    if set.swap(true, Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                }
            })
        })?;
    Ok(flag)
}

/// Parses `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Prints rows as left-aligned columns separated by two spaces.
pub fn print_table(out: &mut impl std::io::Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
