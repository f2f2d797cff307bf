//! A simulated *correct* Kafka log and clients that produce valid histories,
//! for the checker's property tests and benchmarks (and as a model for real
//! drivers). Deterministic per seed; no I/O.
//!
//! What is simulated: producers with up to eight sends in flight whose
//! outcomes are acknowledged (appended, completed `ok` with the offset),
//! failed (not appended), or indeterminate (appended or not, completed `info`
//! or never completed when the producer crashes); completions arrive late, so
//! consumers may poll a value before its acknowledgement is in the history.
//! Offsets have gaps (as transaction markers leave). Consumers are assigned
//! random partitions, poll a few records per partition, are reassigned or see
//! rebalances (restarting at or below what any consumer reached), crash, and
//! have indeterminate polls that advance them unseen. A final consumer reads
//! every partition from the start (the "after healing" read).

use crate::history::{Call, Op, OpType, TopicPartition, Value};

/// SplitMix64: small, fast and good enough to drive a simulation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

/// The shape of a simulated workload.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub partitions: i32,
    pub producers: u64,
    pub consumers: u64,
    /// Scheduling steps; each emits one or two ops.
    pub steps: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            partitions: 3,
            producers: 2,
            consumers: 3,
            steps: 2_000,
        }
    }
}

/// The process id of the final reader.
pub const DRAIN_PROCESS: u64 = 1_000_000;
const MAX_IN_FLIGHT: usize = 8;

#[derive(Clone, Copy)]
enum Outcome {
    Ok(i64),
    Fail,
    Info,
}

struct Pending {
    value: u64,
    tp: usize,
    outcome: Outcome,
}

struct Consumer {
    process: u64,
    active: bool,
    assigned: Vec<usize>,
    /// Next log index to read, per partition.
    pos: Vec<usize>,
}

struct Sim {
    rng: Rng,
    tps: Vec<TopicPartition>,
    /// Per partition: (offset, value) in log order.
    logs: Vec<Vec<(i64, u64)>>,
    next_offset: Vec<i64>,
    /// Per partition: the highest log index + 1 any consumer read.
    covered: Vec<usize>,
    next_value: u64,
    in_flight: Vec<Vec<Pending>>,
    consumers: Vec<Consumer>,
    ops: Vec<Op>,
}

/// Generates a valid history: the checker must find nothing in it.
pub fn generate(config: &SimConfig) -> Vec<Op> {
    let partitions = config.partitions.max(1) as usize;
    let mut sim = Sim {
        rng: Rng::new(config.seed),
        tps: (0..partitions)
            .map(|p| TopicPartition::new("t", p as i32))
            .collect(),
        logs: vec![Vec::new(); partitions],
        next_offset: vec![0; partitions],
        covered: vec![0; partitions],
        next_value: 0,
        in_flight: (0..config.producers.max(1)).map(|_| Vec::new()).collect(),
        consumers: (0..config.consumers.max(1))
            .map(|c| Consumer {
                process: 100 + c,
                active: false,
                assigned: Vec::new(),
                pos: vec![0; partitions],
            })
            .collect(),
        ops: Vec::with_capacity(config.steps * 2),
    };
    for _ in 0..config.steps {
        sim.step();
    }
    sim.finish();
    sim.ops
}

impl Sim {
    fn step(&mut self) {
        let roll = self.rng.below(100);
        let producer = self.rng.index(self.in_flight.len());
        let consumer = self.rng.index(self.consumers.len());
        match roll {
            0..=39 => self.send(producer),
            40..=54 => self.complete_one(producer),
            55..=56 => self.crash_producer(producer),
            57..=91 => self.poll(consumer),
            92..=97 => self.reassign(consumer),
            _ => self.crash_consumer(consumer),
        }
    }

    fn send(&mut self, producer: usize) {
        if self.in_flight[producer].len() >= MAX_IN_FLIGHT {
            self.complete_one(producer);
        }
        let value = self.next_value;
        self.next_value += 1;
        let tp = self.rng.index(self.tps.len());
        self.ops.push(Op::send(
            producer as u64,
            OpType::Invoke,
            &self.tps[tp],
            value,
            None,
        ));
        let outcome = match self.rng.below(100) {
            0..=79 => Outcome::Ok(self.append(tp, value)),
            80..=87 => Outcome::Fail,
            88..=93 => {
                self.append(tp, value);
                Outcome::Info
            }
            _ => Outcome::Info,
        };
        self.in_flight[producer].push(Pending { value, tp, outcome });
    }

    fn append(&mut self, tp: usize, value: u64) -> i64 {
        let offset = self.next_offset[tp];
        self.logs[tp].push((offset, value));
        // One in eight appends leaves a gap, as a transaction marker does.
        let gap = i64::from(self.rng.percent(12));
        self.next_offset[tp] = offset + 1 + gap;
        offset
    }

    fn complete_one(&mut self, producer: usize) {
        let pending = &mut self.in_flight[producer];
        if pending.is_empty() {
            return;
        }
        let i = self.rng.index(pending.len());
        let p = pending.swap_remove(i);
        let (kind, offset) = match p.outcome {
            Outcome::Ok(offset) => (OpType::Ok, Some(offset)),
            Outcome::Fail => (OpType::Fail, None),
            Outcome::Info => (OpType::Info, None),
        };
        self.ops.push(Op::send(
            producer as u64,
            kind,
            &self.tps[p.tp],
            p.value,
            offset,
        ));
    }

    /// The producer dies: its open sends stay indeterminate forever.
    fn crash_producer(&mut self, producer: usize) {
        self.in_flight[producer].clear();
        self.ops
            .push(Op::new(producer as u64, OpType::Info, Call::Crash));
    }

    fn poll(&mut self, c: usize) {
        if !self.consumers[c].active {
            return self.reassign(c);
        }
        let process = self.consumers[c].process;
        self.ops.push(Op::new(
            process,
            OpType::Invoke,
            Call::Poll {
                records: Default::default(),
            },
        ));
        let roll = self.rng.below(100);
        if roll < 3 {
            // A timed-out poll: nothing received.
            self.ops.push(Op::new(
                process,
                OpType::Fail,
                Call::Poll {
                    records: Default::default(),
                },
            ));
            return;
        }
        let indeterminate = roll < 6;
        let mut records = Vec::new();
        for ai in 0..self.consumers[c].assigned.len() {
            let tp = self.consumers[c].assigned[ai];
            let n = self.rng.below(5) as usize;
            let start = self.consumers[c].pos[tp];
            let end = (start + n).min(self.logs[tp].len());
            if !indeterminate {
                for &(offset, value) in &self.logs[tp][start..end] {
                    records.push((tp, offset, value));
                }
                self.covered[tp] = self.covered[tp].max(end);
            }
            self.consumers[c].pos[tp] = end;
        }
        if indeterminate {
            // Delivered or not, the history cannot say.
            self.ops.push(Op::new(
                process,
                OpType::Info,
                Call::Poll {
                    records: Default::default(),
                },
            ));
            return;
        }
        let recs: Vec<(&TopicPartition, i64, u64)> = records
            .iter()
            .map(|&(tp, o, v)| (&self.tps[tp], o, v))
            .collect();
        self.ops.push(Op::poll_ok(process, &recs));
    }

    /// A new assignment epoch: manual assign, a subscribe, or a rebalance.
    fn reassign(&mut self, c: usize) {
        let n = self.tps.len();
        let mut assigned: Vec<usize> = (0..n).filter(|_| self.rng.percent(60)).collect();
        if assigned.is_empty() {
            assigned.push(self.rng.index(n));
        }
        for &tp in &assigned {
            // Restart at or below what some consumer already reached, as a
            // committed offset or auto.offset.reset=earliest would.
            self.consumers[c].pos[tp] = self.rng.index(self.covered[tp] + 1);
        }
        let names: Vec<TopicPartition> = assigned.iter().map(|&tp| self.tps[tp].clone()).collect();
        let consumer = &mut self.consumers[c];
        let call = match (consumer.active, self.rng.below(2)) {
            (false, 0) => Call::Subscribe {
                topics: vec!["t".into()],
            },
            (true, 0) => Call::Rebalance {
                assigned: names,
                revoked: consumer
                    .assigned
                    .iter()
                    .map(|&tp| self.tps[tp].clone())
                    .collect(),
            },
            _ => Call::Assign { partitions: names },
        };
        consumer.active = true;
        consumer.assigned = assigned;
        let kind = if matches!(call, Call::Rebalance { .. }) {
            OpType::Info
        } else {
            OpType::Ok
        };
        self.ops.push(Op::new(consumer.process, kind, call));
    }

    fn crash_consumer(&mut self, c: usize) {
        let consumer = &mut self.consumers[c];
        consumer.active = false;
        self.ops
            .push(Op::new(consumer.process, OpType::Info, Call::Crash));
    }

    /// Completes what is still in flight, then reads every partition whole.
    fn finish(&mut self) {
        for producer in 0..self.in_flight.len() {
            while !self.in_flight[producer].is_empty() {
                self.complete_one(producer);
            }
        }
        let all: Vec<TopicPartition> = self.tps.clone();
        self.ops.push(Op::new(
            DRAIN_PROCESS,
            OpType::Ok,
            Call::Assign { partitions: all },
        ));
        let mut pos = vec![0usize; self.tps.len()];
        loop {
            let mut records = Vec::new();
            for (tp, log) in self.logs.iter().enumerate() {
                let end = (pos[tp] + 50).min(log.len());
                for &(offset, value) in &log[pos[tp]..end] {
                    records.push((&self.tps[tp], offset, value));
                }
                pos[tp] = end;
            }
            if records.is_empty() {
                break;
            }
            self.ops.push(Op::poll_ok(DRAIN_PROCESS, &records));
        }
    }
}

/// The values the simulation sent, for tests that need a fresh one.
pub fn max_value(ops: &[Op]) -> Option<Value> {
    ops.iter()
        .filter_map(|op| match &op.call {
            Call::Send { value, .. } => Some(*value),
            _ => None,
        })
        .max()
}
