//! The noisy-neighbour figure of issue 21, one Sluice on loopback: a steady
//! librdkafka producer (client id `sluice-bench`, fixed rate, linger.ms=0)
//! measures its send → acknowledgement latency in four phases of `secs`:
//!
//! 1. alone;
//! 2. beside a neighbour (client id [`NEIGHBOUR`]) that floods the broker
//!    with small Metadata requests over `conns` connections, each keeping
//!    `inflight` requests pipelined, without any quota;
//! 3. the same flood with a `request_percentage` quota on the neighbour;
//! 4. alone again (how far the machine drifted during the run).
//!
//! Prints each phase's p50/p99/p99.9, the p99 ratio against the first phase
//! (the goal is at most 1.2 with the quota), the broker's CPU (cores), the
//! whole machine's busy cores (other tenants included) and the neighbour's
//! request rate. Asserts nothing: the flooder runs on the same cores as the broker,
//! so on a shared 2-core machine part of any rise is plain CPU contention.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};

use crate::brokers::RunningBroker;
use crate::load::{self, Latency};
use crate::procstat;
use crate::quotas::set_quota;

/// The flooding client's id (the one the quota is set on).
pub const NEIGHBOUR: &str = "noisy-neighbour";
const TOPIC: &str = "noisy-steady";
/// Largest response frame the flooder accepts (a one-topic Metadata answer
/// is a few hundred bytes).
const MAX_FRAME: usize = 1 << 20;

/// What to run.
pub struct NoisyOptions {
    pub work_dir: PathBuf,
    pub secs: f64,
    /// The steady producer's rate, MB/s.
    pub rate_mb_s: f64,
    pub record_size: usize,
    pub conns: usize,
    pub inflight: usize,
    /// The neighbour's `request_percentage` quota in phase 3.
    pub request_percentage: f64,
}

/// One encoded Metadata v12 request for [`TOPIC`], with its size prefix.
fn metadata_frame() -> Result<Vec<u8>> {
    let version = 12;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(MetadataRequest::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str(NEIGHBOUR)))
        .encode(&mut body, MetadataRequest::header_version(version))?;
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]))
        .encode(&mut body, version)?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads and discards one size-prefixed response.
fn skip_response(stream: &mut TcpStream, scratch: &mut Vec<u8>) -> Result<()> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let n = i32::from_be_bytes(size);
    if n < 0 || n as usize > MAX_FRAME {
        bail!("response frame of {n} bytes");
    }
    scratch.resize(n as usize, 0);
    stream.read_exact(scratch)?;
    Ok(())
}

/// One flooding connection: `inflight` requests pipelined, one more sent per
/// response, until `stop`.
fn flood_one(
    bootstrap: &str,
    inflight: usize,
    stop: &AtomicBool,
    answered: &AtomicU64,
) -> Result<()> {
    let frame = metadata_frame()?;
    let mut stream = TcpStream::connect(bootstrap).context("neighbour connect")?;
    stream.set_nodelay(true)?;
    let mut scratch = Vec::new();
    for _ in 0..inflight {
        stream.write_all(&frame)?;
    }
    while !stop.load(Ordering::Relaxed) {
        skip_response(&mut stream, &mut scratch)?;
        answered.fetch_add(1, Ordering::Relaxed);
        stream.write_all(&frame)?;
    }
    Ok(())
}

/// The neighbour: `conns` flooding threads until [`Flood::stop`].
struct Flood {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<()>>>,
    started: Instant,
}

impl Flood {
    fn start(bootstrap: &str, conns: usize, inflight: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let threads = (0..conns)
            .map(|_| {
                let (b, s, a) = (bootstrap.to_owned(), stop.clone(), answered.clone());
                std::thread::spawn(move || flood_one(&b, inflight, &s, &a))
            })
            .collect();
        Flood {
            stop,
            answered,
            threads,
            started: Instant::now(),
        }
    }

    /// Stops the flood; requests answered per second.
    fn stop(self) -> Result<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let rate =
            self.answered.load(Ordering::Relaxed) as f64 / self.started.elapsed().as_secs_f64();
        for t in self.threads {
            t.join().expect("flood thread")?;
        }
        Ok(rate)
    }
}

/// What the broker and the machine spent during one phase.
struct PhaseCpu {
    /// Broker CPU seconds per second (cores).
    broker_cores: f64,
    /// The whole machine's busy cores (this bench, the broker, anything else).
    machine_cores: f64,
}

/// Runs `phase` and measures the broker's and the machine's CPU meanwhile.
fn measured<T>(pid: u32, phase: impl FnOnce() -> Result<T>) -> Result<(T, PhaseCpu)> {
    let (broker0, machine0, t0) = (
        procstat::process_cpu_s(pid).unwrap_or(0.0),
        procstat::machine_busy_s(),
        Instant::now(),
    );
    let out = phase()?;
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu = PhaseCpu {
        broker_cores: (procstat::process_cpu_s(pid).unwrap_or(0.0) - broker0) / secs,
        machine_cores: (procstat::machine_busy_s() - machine0) / secs,
    };
    Ok((out, cpu))
}

fn line(phase: &str, l: &Latency, alone: &Latency, cpu: &PhaseCpu, flood_rate: Option<f64>) {
    println!(
        "{phase:<22} p50 {:7.3} ms  p99 {:7.3} ms  p99.9 {:7.3} ms  p99 ratio {:5.2}  records {:6}  broker {:4.2} cores  machine {:4.2} cores  neighbour {}",
        l.p50_ms,
        l.p99_ms,
        l.p999_ms,
        l.p99_ms / alone.p99_ms,
        l.count,
        cpu.broker_cores,
        cpu.machine_cores,
        flood_rate.map_or("-".to_owned(), |r| format!("{r:.0} req/s")),
    );
}

pub fn run(opts: NoisyOptions) -> Result<()> {
    let broker = RunningBroker::start_sluice(
        &sluice_testkit::locate_sluice_binary()?,
        &opts.work_dir,
        &[],
    )?;
    let b = broker.bootstrap.clone();
    load::create_topic(&b, TOPIC, 1, &[])?;
    let settings = load::ClientSettings::standard();
    let dur = Duration::from_secs_f64(opts.secs);
    let rate = opts.rate_mb_s * 1e6;
    let steady = || load::produce_latency(&b, &settings, TOPIC, rate, opts.record_size, dur);
    println!(
        "noisy neighbour: steady producer {} MB/s of {} B records, acks=1, linger.ms=0; neighbour {} connections x {} pipelined Metadata v12; {} s per phase",
        opts.rate_mb_s, opts.record_size, opts.conns, opts.inflight, opts.secs
    );

    let pid = broker.pid;
    let (alone, cpu) = measured(pid, steady)?;
    line("alone", &alone, &alone, &cpu, None);

    let (crowded, cpu, rate) = flooded(pid, &b, &opts, steady)?;
    line("flood, no quota", &crowded, &alone, &cpu, Some(rate));

    set_quota(&b, NEIGHBOUR, "request_percentage", opts.request_percentage)?;
    let (limited, cpu, rate) = flooded(pid, &b, &opts, steady)?;
    let label = format!("flood, quota {}%", opts.request_percentage);
    line(&label, &limited, &alone, &cpu, Some(rate));

    let (again, cpu) = measured(pid, steady)?;
    line("alone again", &again, &alone, &cpu, None);

    broker.stop()?;
    let _ = std::fs::remove_dir_all(&opts.work_dir);
    Ok(())
}

/// One phase with the neighbour flooding: the steady producer's latency,
/// the CPU used, and the neighbour's answered requests per second.
fn flooded(
    pid: u32,
    bootstrap: &str,
    opts: &NoisyOptions,
    steady: impl FnOnce() -> Result<Latency>,
) -> Result<(Latency, PhaseCpu, f64)> {
    let flood = Flood::start(bootstrap, opts.conns, opts.inflight);
    let (latency, cpu) = measured(pid, steady)?;
    Ok((latency, cpu, flood.stop()?))
}
