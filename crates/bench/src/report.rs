//! Results: raw samples, medians and spreads, ratios, fractions of the bounding
//! ceiling, targets; rendered as a terminal table, JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::brokers::Target;
use crate::procstat::CpuUse;

/// Average cores used by other processes above which a measurement is flagged noisy.
pub const NOISY_OTHER_CORES: f64 = 0.25;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub target: Target,
    pub rep: usize,
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub value: f64,
    /// CPU accounting of the measured interval (absent for derived figures).
    pub cpu: Option<CpuUse>,
    pub noisy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub target: Target,
    pub rep: usize,
    pub scenario: String,
    pub error: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
    pub noisy_runs: usize,
}

impl Stat {
    fn of(samples: &[&Sample]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = samples.iter().map(|s| s.value).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
            noisy_runs: samples.iter().filter(|s| s.noisy).count(),
        })
    }
}

/// How a row's target is judged.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Goal {
    /// Sluice ≥ x × Kafka (capped at 90% of the same-run ceiling when x × Kafka exceeds it).
    RatioAtLeast(f64),
    /// Sluice ≤ x × Kafka.
    RatioAtMost(f64),
    /// Sluice ≤ x (absolute).
    AtMost(f64),
    /// Sluice ≤ x (absolute) and ≤ y × Kafka.
    AtMostAndRatioAtMost(f64, f64),
}

/// One row of the summary: what the table shows.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub sluice: Option<Stat>,
    pub kafka: Option<Stat>,
    pub sink: Option<Stat>,
    /// Sluice median / Kafka median.
    pub ratio: Option<f64>,
    pub ceiling_name: Option<String>,
    pub ceiling: Option<f64>,
    /// Sluice median / ceiling.
    pub fraction_of_ceiling: Option<f64>,
    pub goal: Option<Goal>,
    pub goal_text: Option<String>,
    pub goal_met: Option<bool>,
}

#[derive(Default)]
pub struct Results {
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
}

impl Results {
    #[allow(clippy::too_many_arguments)] // one sample = its full key; a builder would only add noise
    pub fn push(
        &mut self,
        target: Target,
        rep: usize,
        scenario: &str,
        metric: &str,
        unit: &str,
        value: f64,
        cpu: Option<CpuUse>,
    ) {
        let noisy = cpu.is_some_and(|c| c.other_cores > NOISY_OTHER_CORES);
        self.samples.push(Sample {
            target,
            rep,
            scenario: scenario.to_string(),
            metric: metric.to_string(),
            unit: unit.to_string(),
            value,
            cpu,
            noisy,
        });
    }

    pub fn stat(&self, target: Target, scenario: &str, metric: &str) -> Option<Stat> {
        let v: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.target == target && s.scenario == scenario && s.metric == metric)
            .collect();
        Stat::of(&v)
    }

    pub fn median(&self, target: Target, scenario: &str, metric: &str) -> Option<f64> {
        self.stat(target, scenario, metric).map(|s| s.median)
    }

    /// Every (scenario, metric, unit) in first-seen order.
    pub fn keys(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = Vec::new();
        for s in &self.samples {
            let k = (s.scenario.clone(), s.metric.clone(), s.unit.clone());
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_stat(s: &Option<Stat>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n == 1 => format!(
            "{}{}",
            fmt_num(s.median),
            if s.noisy_runs > 0 { " !" } else { "" }
        ),
        Some(s) => format!(
            "{} [{}–{}]{}",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max),
            if s.noisy_runs > 0 { " !" } else { "" }
        ),
    }
}

pub fn table_lines(rows: &[Row], markdown: bool) -> Vec<String> {
    let header = [
        "scenario",
        "metric",
        "Sluice",
        "Kafka",
        "Sluice/Kafka",
        "sink (client ceiling / write floor)",
        "bounding ceiling",
        "Sluice/ceiling",
        "target",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.scenario.clone(),
            format!("{} ({})", r.metric, r.unit),
            fmt_stat(&r.sluice),
            fmt_stat(&r.kafka),
            r.ratio
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "-".into()),
            fmt_stat(&r.sink),
            match (&r.ceiling_name, r.ceiling) {
                (Some(n), Some(c)) => format!("{n} {}", fmt_num(c)),
                _ => "-".into(),
            },
            r.fraction_of_ceiling
                .map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            match (&r.goal_text, r.goal_met) {
                (Some(t), Some(true)) => format!("met ({t})"),
                (Some(t), Some(false)) => format!("MISSED ({t})"),
                (Some(t), None) => format!("n/a ({t})"),
                _ => "".into(),
            },
        ]);
    }
    if markdown {
        let mut out = Vec::new();
        for (i, row) in cells.iter().enumerate() {
            out.push(format!("| {} |", row.join(" | ")));
            if i == 0 {
                out.push(format!("|{}", "---|".repeat(row.len())));
            }
        }
        out
    } else {
        let ncol = cells[0].len();
        let widths: Vec<usize> = (0..ncol)
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        cells
            .iter()
            .map(|row| {
                let mut s = String::new();
                for (c, cell) in row.iter().enumerate() {
                    let _ = write!(s, "{cell:<w$}  ", w = widths[c]);
                }
                s.trim_end().to_string()
            })
            .collect()
    }
}

/// The rule for an absolute upper target (a cost such as CPU-seconds per GB)
/// against the same-run floor of that cost (the page-cache write floor): the target
/// stays as it is unless it lies below the floor, which no broker that writes through
/// the page cache can beat; then it becomes "within 1/0.9 of the floor", i.e.
/// floor / 0.9, and the text says so. Returns (target, text).
pub fn at_most_goal(target: f64, floor: Option<f64>) -> (f64, String) {
    match floor {
        Some(f) if f > target => {
            let t = f / 0.9;
            (
                t,
                format!(
                    "≤ floor / 0.9 = {} (as {target} lies below the same-run floor {})",
                    fmt_num(t),
                    fmt_num(f)
                ),
            )
        }
        _ => (target, format!("≤ {target}")),
    }
}

/// Group samples per scenario for a compact JSON view: scenario -> metric -> target -> stat.
pub fn stats_tree(
    res: &Results,
) -> BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, Stat>>> {
    let mut tree: BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, Stat>>> =
        BTreeMap::new();
    for (scenario, metric, _) in res.keys() {
        for t in [Target::Sluice, Target::Kafka, Target::Sink] {
            if let Some(st) = res.stat(t, &scenario, &metric) {
                tree.entry(scenario.clone())
                    .or_default()
                    .entry(metric.clone())
                    .or_default()
                    .insert(t.name(), st);
            }
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_spread_and_noise_count() {
        let mut r = Results::default();
        let noisy = CpuUse {
            other_cores: 1.0,
            ..Default::default()
        };
        for (i, v) in [3.0, 1.0, 2.0].into_iter().enumerate() {
            r.push(
                Target::Sluice,
                i,
                "s",
                "m",
                "u",
                v,
                if i == 0 { Some(noisy) } else { None },
            );
        }
        let st = r.stat(Target::Sluice, "s", "m").unwrap();
        assert_eq!(
            (st.median, st.min, st.max, st.n, st.noisy_runs),
            (2.0, 1.0, 3.0, 3, 1)
        );
        r.push(Target::Sluice, 3, "s", "m", "u", 10.0, None);
        assert_eq!(r.median(Target::Sluice, "s", "m"), Some(2.5));
        assert!(r.stat(Target::Kafka, "s", "m").is_none());
    }

    #[test]
    fn absolute_cost_target_rises_to_the_floor_over_0_9_only_when_below_it() {
        // Target above the floor: unchanged.
        let (t, text) = at_most_goal(0.3, Some(0.2));
        assert_eq!((t, text.as_str()), (0.3, "≤ 0.3"));
        assert_eq!(at_most_goal(0.3, None).0, 0.3);
        // Target below the floor: floor / 0.9, and the text names both.
        let (t, text) = at_most_goal(0.3, Some(0.45));
        assert!((t - 0.5).abs() < 1e-12);
        assert!(text.contains("floor / 0.9 = 0.500"), "{text}");
        assert!(text.contains("below the same-run floor 0.450"), "{text}");
        // Exactly at the floor is not below it.
        assert_eq!(at_most_goal(0.3, Some(0.3)).0, 0.3);
    }

    #[test]
    fn table_has_a_row_per_summary_row() {
        let row = Row {
            scenario: "produce".into(),
            metric: "throughput".into(),
            unit: "MB/s".into(),
            sluice: Some(Stat {
                median: 500.0,
                min: 400.0,
                max: 600.0,
                n: 3,
                noisy_runs: 1,
            }),
            kafka: None,
            sink: None,
            ratio: None,
            ceiling_name: None,
            ceiling: None,
            fraction_of_ceiling: None,
            goal: None,
            goal_text: None,
            goal_met: None,
        };
        let md = table_lines(std::slice::from_ref(&row), true);
        assert_eq!(md.len(), 3);
        assert!(md[2].contains("500.0 [400.0–600.0] !"));
        assert_eq!(table_lines(&[row], false).len(), 2);
    }
}
