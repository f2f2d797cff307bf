//! One module per page: plain data from [`crate::kafka::model`] in, a whole
//! HTML document out. Every string that came from the cluster or the user
//! goes through [`crate::html::E`] (text) or [`crate::html::U`] (URLs).

pub mod acl_edit;
pub mod acls;
pub mod broker;
pub mod configs;
pub mod error;
pub mod group;
pub mod group_delete;
pub mod groups;
pub mod messages;
pub mod messages_jsonl;
pub mod overview;
pub mod quota_edit;
pub mod quotas;
pub mod reset;
pub mod throughput;
pub mod topic;
pub mod topic_delete;
pub mod topic_edit;
pub mod topic_new;
pub mod topics;
pub mod user_edit;
pub mod users;

/// A list of node ids as `1, 2, 3`.
pub(crate) fn ids(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

/// A number with thin thousands separators.
pub(crate) fn num(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in binary units.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_get_separators() {
        assert_eq!(super::num(0), "0");
        assert_eq!(super::num(1234567), "1,234,567");
        assert_eq!(super::num(-1000), "-1,000");
        assert_eq!(super::ids(&[1, 2]), "1, 2");
        assert_eq!(super::bytes(1000), "1000 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
    }
}
