//! `sluice consume TOPIC`: prints records with a kcat-like `--format`.
//! Without `--group` it reads the partitions directly; with `--group` it
//! joins the consumer group and commits what it printed, also when stopped
//! by Ctrl-C.

use std::collections::HashSet;
use std::io::{BufWriter, Write as _};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::format::{Fields, Format};
use super::{stop_flag, ConnectArgs};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read.
    topic: String,
    /// Start at the log start offset (default: only new records; with --group: the committed offset, else the earliest).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (negative: this many records before the end of each partition).
    #[arg(
        long,
        short = 'o',
        allow_negative_numbers = true,
        conflicts_with = "group"
    )]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Option<i32>,
    /// Consume as a member of this consumer group and commit offsets.
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Stop at the end of every partition instead of following new records.
    #[arg(long, short = 'e')]
    exit_at_end: bool,
    /// Output format: %t topic, %p partition, %o offset, %k key, %v value, %h headers, %T timestamp, %K/%S key/value length; \n \t escapes.
    #[arg(long, short = 'F', default_value = "%v\\n")]
    format: String,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format =
        Format::parse(&args.format).map_err(|e| anyhow::anyhow!("invalid --format: {e}"))?;
    let stop = stop_flag()?;
    let connect = &args.connect;
    let mut config = connect.client_config();
    config
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false")
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning || args.group.is_some() {
                "earliest"
            } else {
                "latest"
            },
        );
    match &args.group {
        Some(g) => {
            // Commit (every 5 s and at exit) only offsets stored after printing.
            config
                .set("group.id", g)
                .set("enable.auto.commit", "true")
                .set("enable.auto.offset.store", "false");
        }
        None => {
            config.set("group.id", "sluice-cli-unused");
        }
    }
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    let md = consumer
        .fetch_metadata(Some(&args.topic), connect.timeout())
        .map_err(|e| connect.map_err("fetching metadata", e))?;
    let topic_md = md.topics().iter().find(|t| t.name() == args.topic);
    let partitions: Vec<i32> = match topic_md {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        Some(t) => bail!(
            "cannot consume topic {:?}: {}",
            args.topic,
            RDKafkaErrorCode::from(t.error().unwrap_or(
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
            ))
        ),
        None => bail!("unknown topic {:?}", args.topic),
    };
    let mut expected_eofs = partitions.len();
    if let Some(g) = &args.group {
        consumer
            .subscribe(&[&args.topic])
            .with_context(|| format!("cannot join group {g:?}"))?;
        if args.from_beginning {
            // --from-beginning with a group only matters when nothing is
            // committed (auto.offset.reset=earliest), as in Kafka's tool.
        }
    } else {
        let selected: Vec<i32> = match args.partition {
            Some(p) if partitions.contains(&p) => vec![p],
            Some(p) => bail!(
                "topic {:?} has no partition {p} (it has {})",
                args.topic,
                partitions.len()
            ),
            None => partitions.clone(),
        };
        expected_eofs = selected.len();
        let start = match args.offset {
            Some(o) if o >= 0 => Offset::Offset(o),
            Some(o) => Offset::OffsetTail(o.saturating_neg()),
            None if args.from_beginning => Offset::Beginning,
            None => Offset::End,
        };
        let mut tpl = TopicPartitionList::new();
        for p in selected {
            tpl.add_partition_offset(&args.topic, p, start)
                .context("building the assignment")?;
        }
        consumer.assign(&tpl).context("cannot assign partitions")?;
    }

    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut printed = 0u64;
    let mut eofs: HashSet<i32> = HashSet::new();
    let mut pending = false;
    let mut failure: Option<anyhow::Error> = None;
    let mut broken_pipe = false;
    // When the cluster last answered (a record or an end of partition).
    let mut last_heard = std::time::Instant::now();
    // A transport error since then, fatal if nothing is heard in time.
    let mut outage: Option<KafkaError> = None;
    'outer: while !stop.load(Ordering::Relaxed) {
        if args.count.is_some_and(|c| printed >= c) {
            break;
        }
        if outage.is_some() && last_heard.elapsed() >= connect.timeout() {
            let e = outage.take().expect("checked");
            failure = Some(connect.map_err("consuming", e));
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if pending {
                    if out.flush().is_err() {
                        broken_pipe = true;
                        break;
                    }
                    pending = false;
                }
            }
            Some(Ok(m)) => {
                last_heard = std::time::Instant::now();
                outage = None;
                eofs.remove(&m.partition());
                let mut headers = Vec::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        headers.push((hd.key, hd.value));
                    }
                }
                let fields = Fields {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                    headers,
                    timestamp: m.timestamp().to_millis(),
                };
                if let Err(e) = format.write(&mut out, &fields) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        broken_pipe = true;
                        break 'outer;
                    }
                    return Err(e).context("writing output");
                }
                if args.group.is_some() {
                    // Commit only what was printed.
                    let _ = consumer.store_offset_from_message(&m);
                }
                pending = true;
                printed += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_heard = std::time::Instant::now();
                outage = None;
                eofs.insert(p);
                if args.exit_at_end {
                    let assigned = if args.group.is_some() {
                        consumer.assignment().map(|a| a.count()).unwrap_or(0)
                    } else {
                        expected_eofs
                    };
                    if assigned > 0 && eofs.len() >= assigned {
                        break;
                    }
                }
            }
            // librdkafka reports a moment with no connection (its
            // bootstrap connection handed over to the broker it learned,
            // a reconnect) and goes on by itself: only a cluster silent
            // for the whole timeout is unreachable.
            Some(Err(e)) if super::is_transport(&e) && last_heard.elapsed() < connect.timeout() => {
                tracing::debug!(error = %e, "transient transport error while consuming");
                outage = Some(e);
            }
            Some(Err(e)) => {
                failure = Some(connect.map_err("consuming", e));
                break;
            }
        }
    }
    if !broken_pipe {
        let _ = out.flush();
    }
    drop(out);
    if args.group.is_some() {
        // The offsets stored above; nothing stored => nothing to commit.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                eprintln!("error: committing offsets: {e}");
                failure.get_or_insert_with(|| anyhow::anyhow!("committing offsets failed: {e}"));
            }
        }
        consumer.unsubscribe();
    }
    eprintln!("consumed {printed} records from {}", args.topic);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
