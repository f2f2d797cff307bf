//! Property tests: a simulated correct log never yields an anomaly, and each
//! injected fault is always flagged by its own name (and nothing a fault of
//! that kind cannot cause).

use proptest::prelude::*;
use sluice_checker::faults::{inject, Fault};
use sluice_checker::history::{read_jsonl, write_jsonl};
use sluice_checker::sim::{generate, SimConfig};
use sluice_checker::{check, AnomalyKind};

fn config() -> impl Strategy<Value = SimConfig> {
    (any::<u64>(), 1..5i32, 1..4u64, 1..5u64, 50..1500usize).prop_map(
        |(seed, partitions, producers, consumers, steps)| SimConfig {
            seed,
            partitions,
            producers,
            consumers,
            steps,
        },
    )
}

fn fault() -> impl Strategy<Value = Fault> {
    prop::sample::select(Fault::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_correct_log_is_never_flagged(config in config()) {
        let ops = generate(&config);
        let report = check(&ops).expect("the simulation writes well-formed histories");
        prop_assert!(report.is_valid(), "{report}");
        prop_assert!(report.stats.records_polled > 0 || report.stats.sends_ok == 0);
    }

    #[test]
    fn an_injected_fault_is_flagged_by_name(config in config(), fault in fault(), seed in any::<u64>()) {
        let mut ops = generate(&config);
        let before = ops.clone();
        prop_assume!(inject(&mut ops, fault, seed));
        prop_assert_ne!(&ops, &before, "the fault changed nothing");
        let report = check(&ops).expect("faults keep histories well-formed");
        let kinds = report.kinds();
        prop_assert!(kinds.contains(&fault.expected()), "{fault:?} not flagged as {}: {report}", fault.expected());
        prop_assert!(kinds.is_subset(&fault.allowed()), "{fault:?} flagged as more than {:?}: {report}", fault.allowed());
    }

    #[test]
    fn histories_survive_json_lines(config in config()) {
        let ops = generate(&SimConfig { steps: config.steps.min(300), ..config });
        let mut buf = Vec::new();
        write_jsonl(&mut buf, &ops).unwrap();
        let mut back = Vec::new();
        read_jsonl(buf.as_slice(), |op| { back.push(op); Ok(()) }).unwrap();
        prop_assert_eq!(back, ops);
    }
}

/// Every fault finds a place in an ordinary simulated history, so the
/// property above is not vacuously assumed away.
#[test]
fn every_fault_applies_to_an_ordinary_history() {
    for fault in Fault::ALL {
        let mut ops = generate(&SimConfig::default());
        assert!(inject(&mut ops, fault, 7), "{fault:?} found no place");
        let report = check(&ops).unwrap();
        assert_eq!(
            report
                .kinds()
                .into_iter()
                .filter(|k| *k == fault.expected())
                .count(),
            1,
            "{fault:?}: {report}"
        );
    }
}

/// The simulation exercises what the checker must tolerate.
#[test]
fn the_simulation_covers_indeterminate_and_late_outcomes() {
    let ops = generate(&SimConfig {
        steps: 5_000,
        ..SimConfig::default()
    });
    let report = check(&ops).unwrap();
    assert!(report.is_valid(), "{report}");
    let s = &report.stats;
    assert!(
        s.sends_ok > 1000 && s.sends_failed > 50 && s.sends_indeterminate > 50,
        "{s:?}"
    );
    assert_eq!(AnomalyKind::ALL.len(), 9);
}
