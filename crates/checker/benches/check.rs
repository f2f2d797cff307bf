//! Checker throughput on a simulated correct history of about a million ops
//! (criterion prints it as elements/s = ops/s), and the JSON-lines parse the
//! `sluice-check` binary adds on top.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_checker::history::{read_jsonl, write_jsonl};
use sluice_checker::sim::{generate, SimConfig};
use sluice_checker::{check, Checker};

fn history() -> Vec<sluice_checker::Op> {
    generate(&SimConfig {
        seed: 42,
        partitions: 8,
        producers: 4,
        consumers: 4,
        steps: 700_000,
    })
}

fn bench(c: &mut Criterion) {
    let ops = history();
    let mut group = c.benchmark_group("checker");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ops.len() as u64));
    group.bench_function(format!("check_{}_ops", ops.len()), |b| {
        b.iter(|| {
            let report = check(&ops).unwrap();
            assert!(report.is_valid());
            report.stats.ops
        })
    });
    let mut jsonl = Vec::new();
    write_jsonl(&mut jsonl, &ops).unwrap();
    group.throughput(Throughput::Bytes(jsonl.len() as u64));
    group.bench_function(format!("parse_and_check_{}_bytes", jsonl.len()), |b| {
        b.iter(|| {
            let mut checker = Checker::new();
            read_jsonl(jsonl.as_slice(), |op| checker.observe(&op)).unwrap();
            checker.finish().stats.ops
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
