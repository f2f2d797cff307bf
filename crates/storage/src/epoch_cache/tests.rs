use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::sim::SimFs;

fn e(epoch: i32, start: i64) -> (LeaderEpoch, Offset) {
    (LeaderEpoch(epoch), Offset(start))
}

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut c = LeaderEpochCache::new("/logs/t-0");
    for (ep, o) in entries {
        assert!(c.assign(LeaderEpoch(*ep), Offset(*o)));
    }
    c
}

#[test]
fn kafka_text_format_round_trips() {
    let entries = vec![e(0, 0), e(3, 1200)];
    let text = format(&entries);
    assert_eq!(text, "0\n2\n0 0\n3 1200\n");
    assert_eq!(parse(text.as_bytes()), Some(entries));
    assert_eq!(parse(b"0\n0\n"), Some(vec![]));
}

#[test]
fn malformed_or_disordered_files_are_refused() {
    for bad in [
        &b""[..],
        b"1\n0\n",
        b"0\n2\n0 0\n",
        b"0\n1\n0 0\n1 5\n",
        b"0\n1\n0 0 7\n",
        b"0\n1\nx 0\n",
        b"0\n2\n3 0\n1 5\n",      // epochs decreasing
        b"0\n2\n1 5\n3 5\n",      // start offsets not increasing
        b"0\n1\n-1 0\n",          // negative epoch
        b"0\n1\n0 -4\n",          // negative offset
        b"0\n99999999999\n0 0\n", // count the file cannot hold
        b"\xff\xfe",
    ] {
        assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn assign_keeps_order_like_kafka() {
    let mut c = cache(&[(0, 0), (2, 10)]);
    assert!(
        !c.assign(LeaderEpoch(2), Offset(15)),
        "same epoch, later offset"
    );
    assert!(!c.assign(LeaderEpoch(-1), Offset(20)), "no epoch");
    assert!(c.assign(LeaderEpoch(4), Offset(20)));
    assert_eq!(c.entries(), &[e(0, 0), e(2, 10), e(4, 20)]);
    // A new leader elected twice at the same log end: the newer epoch wins.
    assert!(c.assign(LeaderEpoch(5), Offset(20)));
    assert_eq!(c.entries(), &[e(0, 0), e(2, 10), e(5, 20)]);
    // An older epoch drops the newer ones (Kafka's non-monotonic rule).
    assert!(c.assign(LeaderEpoch(1), Offset(30)));
    assert_eq!(c.entries(), &[e(0, 0), e(1, 30)]);
    assert_eq!(c.latest_epoch(), Some(LeaderEpoch(1)));
}

#[test]
fn end_offset_for_matches_kafka() {
    let c = cache(&[(1, 0), (3, 10), (6, 25)]);
    let leo = Offset(40);
    let q = |ep: i32| c.end_offset_for(LeaderEpoch(ep), leo);
    assert_eq!(q(6), Some(e(6, 40)), "latest epoch ends at the LEO");
    assert_eq!(q(3), Some(e(3, 25)));
    assert_eq!(q(4), Some(e(3, 25)), "unknown epoch: the largest below");
    assert_eq!(q(2), Some(e(1, 10)));
    assert_eq!(
        q(0),
        Some(e(0, 0)),
        "below the first: that epoch, first start"
    );
    assert_eq!(q(7), None, "above the latest");
    assert_eq!(q(-1), None);
    assert_eq!(
        LeaderEpochCache::new("/x").end_offset_for(LeaderEpoch(0), leo),
        None
    );
}

#[test]
fn truncations() {
    let mut c = cache(&[(1, 0), (3, 10), (6, 25)]);
    assert!(!c.truncate_from_end(Offset(26)));
    assert!(
        c.truncate_from_end(Offset(25)),
        "an entry starting at the cut goes"
    );
    assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);

    let mut c = cache(&[(1, 0), (3, 10), (6, 25)]);
    assert!(!c.truncate_from_start(Offset(0)));
    assert!(
        c.truncate_from_start(Offset(12)),
        "the covering entry moves up"
    );
    assert_eq!(c.entries(), &[e(3, 12), e(6, 25)]);
    assert!(c.truncate_from_start(Offset(25)));
    assert_eq!(c.entries(), &[e(6, 25)]);
    assert!(!c.truncate_from_start(Offset(25)));
    assert!(c.truncate_from_start(Offset(90)));
    assert_eq!(c.entries(), &[e(6, 90)]);
    assert!(c.clear());
    assert!(c.is_empty());
}

#[test]
fn persist_is_atomic_and_reloads() {
    let fs = SimFs::new();
    let dir = Path::new("/logs/t-0");
    fs.create_dir_all(dir).unwrap();
    assert!(matches!(
        LeaderEpochCache::load(&fs, dir).unwrap(),
        Loaded::Missing(_)
    ));
    let mut c = LeaderEpochCache::new(dir);
    c.assign(LeaderEpoch(2), Offset(7));
    c.persist(&fs).unwrap();
    fs.crash(3);
    match LeaderEpochCache::load(&fs, dir).unwrap() {
        Loaded::Ok(l) => assert_eq!(l.entries(), &[e(2, 7)]),
        other => panic!("{other:?}"),
    }
    let path = dir.join(LEADER_EPOCH_CHECKPOINT);
    let f = fs
        .open(&path, &crate::fs::OpenOptions::create_truncate())
        .unwrap();
    crate::fs::write_all_at(&*f, b"0\n3\n1 1\n", 0).unwrap();
    assert!(
        matches!(LeaderEpochCache::load(&fs, dir).unwrap(), Loaded::Corrupt(c) if c.is_empty())
    );
}

#[test]
fn fuzz_body_runs_on_samples() {
    for sample in [
        &b"0\n2\n0 0\n3 1200\n"[..],
        b"0\n1\n5 5",
        b"\x00\x00\x05\x00\x10\x01\x00\x03\x00\x02\x02\x00\x04\x00\x00\x03\xff\xff\xff\xff",
        b"0\n4294967296\n",
        &[0xff; 64],
    ] {
        crate::fuzzing::leader_epoch_checkpoint(sample);
    }
}

/// The simple model: one epoch per offset range, rebuilt from a list of
/// (epoch, start) assignments that are applied naively.
#[derive(Clone, Debug)]
enum Op {
    Assign(i32, i64),
    TruncateEnd(i64),
    TruncateStart(i64),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i32..12, 0i64..60).prop_map(|(e, o)| Op::Assign(e, o)),
        2 => (-2i64..60).prop_map(Op::TruncateEnd),
        2 => (0i64..60).prop_map(Op::TruncateStart),
        1 => Just(Op::Clear),
    ]
}

/// Model: a map epoch -> start written the obvious way.
fn model_apply(m: &mut Vec<(i32, i64)>, op: &Op) {
    match *op {
        Op::Assign(ep, o) => {
            if m.last().is_some_and(|&(le, ls)| le == ep && ls <= o) {
                return;
            }
            m.retain(|&(e2, o2)| e2 < ep && o2 < o);
            m.push((ep, o));
        }
        Op::TruncateEnd(o) if o >= 0 => m.retain(|&(_, s)| s < o),
        Op::TruncateEnd(_) => {}
        Op::TruncateStart(o) => {
            let covering = m.iter().rev().find(|&&(_, s)| s <= o).copied();
            if let Some((ep, _)) = covering {
                m.retain(|&(_, s)| s > o);
                m.insert(0, (ep, o));
            }
        }
        Op::Clear => m.clear(),
    }
}

/// The model's answer to endOffsetFor, by linear search.
fn model_end(m: &[(i32, i64)], ep: i32, leo: i64) -> Option<(i32, i64)> {
    let (latest, _) = *m.last()?;
    if ep == latest {
        return Some((ep, leo));
    }
    let next = m.iter().find(|&&(e2, _)| e2 > ep)?;
    let floor = m.iter().rev().find(|&&(e2, _)| e2 <= ep);
    Some((floor.map_or(ep, |f| f.0), next.1))
}

proptest! {
    #[test]
    fn cache_matches_model(ops in proptest::collection::vec(op(), 0..40)) {
        let mut c = LeaderEpochCache::new("/logs/t-0");
        let mut m: Vec<(i32, i64)> = Vec::new();
        for op in &ops {
            let before = c.entries().to_vec();
            let changed = match *op {
                Op::Assign(ep, o) => c.assign(LeaderEpoch(ep), Offset(o)),
                Op::TruncateEnd(o) => c.truncate_from_end(Offset(o)),
                Op::TruncateStart(o) => c.truncate_from_start(Offset(o)),
                Op::Clear => c.clear(),
            };
            model_apply(&mut m, op);
            let got: Vec<(i32, i64)> = c.entries().iter().map(|(e, o)| (e.0, o.0)).collect();
            prop_assert_eq!(&got, &m, "after {:?}", op);
            prop_assert_eq!(changed, before != c.entries(), "change flag after {:?}", op);
            prop_assert!(well_formed(c.entries()));
            let reparsed = parse(format(c.entries()).as_bytes());
            prop_assert_eq!(reparsed.as_deref(), Some(c.entries()));
            for ep in -1..13 {
                let want = model_end(&m, ep, 100).map(|(e, o)| (LeaderEpoch(e), Offset(o)));
                let want = if ep < 0 { None } else { want };
                prop_assert_eq!(c.end_offset_for(LeaderEpoch(ep), Offset(100)), want);
            }
        }
    }
}
