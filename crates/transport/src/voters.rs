//! `controller.quorum.voters`: Kafka's static voter set, written
//! `id@host:port,id@host:port,...` (an IPv6 host in brackets:
//! `1@[::1]:9093`). Parsed by hand, so it is property-tested: every value
//! it prints parses back to itself, and no input makes it panic.

use std::fmt;

use crate::error::TransportError;

/// One voter: its node id and controller listener address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumVoter {
    pub id: i32,
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// `host:port` for a connect call (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.address())
    }
}

/// The voter set, in configuration order, ids unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumVoters(Vec<QuorumVoter>);

impl QuorumVoters {
    /// Voters from a list (ids must be unique and non-negative, at least one).
    pub fn new(voters: Vec<QuorumVoter>) -> Result<QuorumVoters, TransportError> {
        let value = voters
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",");
        check(&voters).map_err(|reason| TransportError::InvalidVoters { value, reason })?;
        Ok(QuorumVoters(voters))
    }

    /// Parses `id@host:port,...` (whitespace around entries is ignored).
    pub fn parse(value: &str) -> Result<QuorumVoters, TransportError> {
        let invalid = |reason: String| TransportError::InvalidVoters {
            value: value.to_string(),
            reason,
        };
        let mut voters = Vec::new();
        for entry in value.split(',') {
            voters.push(parse_voter(entry.trim()).map_err(invalid)?);
        }
        check(&voters).map_err(invalid)?;
        Ok(QuorumVoters(voters))
    }

    pub fn voters(&self) -> &[QuorumVoter] {
        &self.0
    }

    pub fn get(&self, id: i32) -> Option<&QuorumVoter> {
        self.0.iter().find(|v| v.id == id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for QuorumVoters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

fn check(voters: &[QuorumVoter]) -> Result<(), String> {
    if voters.is_empty() {
        return Err("no voters".into());
    }
    for (i, v) in voters.iter().enumerate() {
        if voters[..i].iter().any(|w| w.id == v.id) {
            return Err(format!("voter id {} appears twice", v.id));
        }
    }
    Ok(())
}

fn parse_voter(entry: &str) -> Result<QuorumVoter, String> {
    let (id, addr) = entry
        .split_once('@')
        .ok_or_else(|| format!("'{entry}' is not id@host:port"))?;
    let id: i32 = id.parse().map_err(|_| format!("'{id}' is not a node id"))?;
    if id < 0 {
        return Err(format!("node id {id} is negative"));
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("'{addr}' is not [ipv6]:port"))?;
        (host, port)
    } else {
        addr.rsplit_once(':')
            .ok_or_else(|| format!("'{addr}' is not host:port"))?
    };
    if host.is_empty() || host.contains(['@', ',', '[', ']']) || host.contains(char::is_whitespace)
    {
        return Err(format!("'{host}' is not a host"));
    }
    if !addr.starts_with('[') && host.contains(':') {
        return Err(format!("IPv6 host '{host}' must be in brackets"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port"))?;
    if port == 0 {
        return Err("port 0".into());
    }
    Ok(QuorumVoter {
        id,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kafka_examples() {
        let v = QuorumVoters::parse("1@localhost:9093, 2@[::1]:9094,3@10.0.0.3:9095").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(2).unwrap().host, "::1");
        assert_eq!(v.get(2).unwrap().address(), "[::1]:9094");
        assert_eq!(
            v.to_string(),
            "1@localhost:9093,2@[::1]:9094,3@10.0.0.3:9095"
        );
        for bad in [
            "",
            "1",
            "1@",
            "1@h",
            "x@h:1",
            "-1@h:1",
            "1@h:0",
            "1@h:70000",
            "1@h:1,1@g:2",
            "1@::1:9",
            "1@[::1]9",
            "1@:9",
        ] {
            assert!(QuorumVoters::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn voter() -> impl Strategy<Value = QuorumVoter> {
        (
            0..i32::MAX,
            prop_oneof![
                "[a-z][a-z0-9.-]{0,20}",
                "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}"
            ],
            1..=u16::MAX,
        )
            .prop_map(|(id, host, port)| QuorumVoter { id, host, port })
    }

    proptest! {
        #[test]
        fn printed_voters_parse_back(vs in proptest::collection::vec(voter(), 1..6)) {
            let mut seen = std::collections::BTreeSet::new();
            let vs: Vec<_> = vs.into_iter().filter(|v| seen.insert(v.id)).collect();
            let voters = QuorumVoters::new(vs).unwrap();
            prop_assert_eq!(QuorumVoters::parse(&voters.to_string()).unwrap(), voters);
        }

        #[test]
        fn any_input_parses_or_errs(s in "\\PC{0,64}") {
            crate::fuzzing::parse_voters(s.as_bytes());
        }
    }
}
