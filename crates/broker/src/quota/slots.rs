//! `max.connections` and `listener.name.<listener>.max.connections`: the
//! counts of live client connections, broker-wide and per listener, with
//! the rules of Kafka's `ConnectionQuotas.connectionSlotAvailable`:
//! - a listener admits a connection while it holds fewer than its own
//!   limit (its `listener.name.<l>.max.connections`, else `max.connections`:
//!   Kafka reads listener keys with the broker key as fallback);
//! - a listener other than the protected one also needs the broker-wide
//!   count (every listener's connections) under `max.connections`;
//! - the protected listener (the inter-broker listener of a broker with
//!   several) is left out of the broker-wide limit, but its connections
//!   count in the total, so they take room from the other listeners.
//!
//! Both keys are dynamic in Kafka. A lowered limit admits no connection
//! until the count is under it; a lowered listener limit closes no live
//! connection. A broker-wide count above `max.connections` (lowered, or
//! grown by the protected listener) makes each of Kafka's processors of
//! the other listeners close its least recently used connection on every
//! poll (`SocketServer.closeExcessConnections`); Sluice does not do that
//! yet (issue 21). Unlike Kafka's
//! acceptor, which waits for a slot with the connection in hand, a
//! connection refused here is closed at once (`network::accept_loop`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// `max.connections` and its listener overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub broker: usize,
    /// (listener name, limit); names match without regard to case.
    pub listeners: Vec<(String, usize)>,
}

impl ConnectionLimits {
    /// Only a broker-wide limit.
    pub fn broker(limit: usize) -> ConnectionLimits {
        ConnectionLimits {
            broker: limit,
            listeners: Vec::new(),
        }
    }

    /// The limit of `listener` alone (Kafka's `maxListenerConnections`)
    /// and which key sets it.
    fn listener(&self, listener: &str) -> SlotRefusal {
        self.listeners
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(listener))
            .map_or(SlotRefusal::Broker { limit: self.broker }, |(_, n)| {
                SlotRefusal::Listener { limit: *n }
            })
    }
}

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefusal {
    /// `max.connections`, over every listener but the protected one.
    Broker { limit: usize },
    /// `listener.name.<l>.max.connections` (or, for the protected
    /// listener without one, `max.connections` as its own limit: reported
    /// as `Broker`).
    Listener { limit: usize },
}

impl SlotRefusal {
    pub fn limit(self) -> usize {
        match self {
            SlotRefusal::Broker { limit } | SlotRefusal::Listener { limit } => limit,
        }
    }
}

struct Counts {
    limits: ConnectionLimits,
    total: usize,
    /// Live connections per listener (upper-cased name); a listener with
    /// none is absent.
    listeners: HashMap<String, usize>,
}

/// The connection counts of every listener.
pub struct ConnectionSlots {
    counts: Mutex<Counts>,
}

impl ConnectionSlots {
    pub fn new(limits: ConnectionLimits) -> ConnectionSlots {
        ConnectionSlots {
            counts: Mutex::new(Counts {
                limits,
                total: 0,
                listeners: HashMap::new(),
            }),
        }
    }

    /// The limits in effect.
    pub fn limits(&self) -> ConnectionLimits {
        self.counts.lock().limits.clone()
    }

    /// Changes the limits; live connections keep their slots.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        let mut counts = self.counts.lock();
        if counts.limits != limits {
            tracing::info!(
                max_connections = limits.broker,
                listeners = ?limits.listeners,
                "max.connections changed"
            );
            counts.limits = limits;
        }
    }

    /// A slot for a new connection on `listener` (`protected`: the
    /// inter-broker listener of a broker with several).
    pub fn try_acquire(
        self: &Arc<Self>,
        listener: &str,
        protected: bool,
    ) -> Result<SlotPermit, SlotRefusal> {
        let key = listener.to_ascii_uppercase();
        let mut counts = self.counts.lock();
        if !protected && counts.total >= counts.limits.broker {
            return Err(SlotRefusal::Broker {
                limit: counts.limits.broker,
            });
        }
        let on_listener = counts.listeners.get(&key).copied().unwrap_or(0);
        let refusal = counts.limits.listener(listener);
        if on_listener >= refusal.limit() {
            return Err(refusal);
        }
        counts.total += 1;
        *counts.listeners.entry(key.clone()).or_default() += 1;
        Ok(SlotPermit {
            slots: self.clone(),
            listener: key,
        })
    }

    /// Live connections: over every listener, and on `listener`.
    pub fn count(&self, listener: &str) -> (usize, usize) {
        let counts = self.counts.lock();
        let on = counts
            .listeners
            .get(&listener.to_ascii_uppercase())
            .copied()
            .unwrap_or(0);
        (counts.total, on)
    }

    fn release(&self, key: &str) {
        let mut counts = self.counts.lock();
        let on = counts
            .listeners
            .get_mut(key)
            .expect("a permit's listener has a count");
        *on -= 1;
        if *on == 0 {
            counts.listeners.remove(key);
        }
        counts.total -= 1;
        debug_assert!(counts.total >= counts.listeners.values().sum::<usize>());
    }
}

/// One admitted connection's slot, given back when dropped.
pub struct SlotPermit {
    slots: Arc<ConnectionSlots>,
    listener: String,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.slots.release(&self.listener);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(limits: ConnectionLimits) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots::new(limits))
    }

    #[test]
    fn a_lowered_limit_keeps_live_connections_and_admits_none_until_under_it() {
        let slots = slots(ConnectionLimits::broker(3));
        let held: Vec<_> = (0..3)
            .map(|_| slots.try_acquire("CLIENT", false).unwrap())
            .collect();
        assert!(slots.try_acquire("CLIENT", false).is_err());
        slots.set_limits(ConnectionLimits::broker(1));
        let mut held = held.into_iter();
        drop(held.next());
        drop(held.next());
        assert_eq!(
            slots.try_acquire("CLIENT", false).err(),
            Some(SlotRefusal::Broker { limit: 1 }),
            "1 held at a limit of 1"
        );
        drop(held.next());
        let one = slots.try_acquire("CLIENT", false).expect("0 held");
        slots.set_limits(ConnectionLimits::broker(3));
        let more: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("CLIENT", false).unwrap())
            .collect();
        assert!(slots.try_acquire("CLIENT", false).is_err());
        drop((one, more));
        assert_eq!(slots.count("CLIENT"), (0, 0));
    }

    #[test]
    fn a_listener_limit_bounds_its_listener_only() {
        let slots = slots(ConnectionLimits {
            broker: 5,
            listeners: vec![("client".into(), 2)],
        });
        let a: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("CLIENT", false).unwrap())
            .collect();
        assert_eq!(
            slots.try_acquire("CLIENT", false).err(),
            Some(SlotRefusal::Listener { limit: 2 })
        );
        // Another listener: up to the broker-wide 5 in all.
        let b: Vec<_> = (0..3)
            .map(|_| slots.try_acquire("OTHER", false).unwrap())
            .collect();
        assert_eq!(
            slots.try_acquire("OTHER", false).err(),
            Some(SlotRefusal::Broker { limit: 5 })
        );
        drop(a);
        assert!(slots.try_acquire("CLIENT", false).is_ok());
        drop(b);
    }

    #[test]
    fn the_protected_listener_is_outside_the_broker_limit_but_counts_in_it() {
        let slots = slots(ConnectionLimits::broker(2));
        let clients: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("CLIENT", false).unwrap())
            .collect();
        // Full for clients, not for the inter-broker listener, which has
        // max.connections of its own (Kafka's fallback of the listener key).
        let brokers: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("REPLICATION", true).unwrap())
            .collect();
        assert_eq!(
            slots.try_acquire("REPLICATION", true).err(),
            Some(SlotRefusal::Broker { limit: 2 }),
            "the listener's own limit, from max.connections"
        );
        drop(clients);
        // The inter-broker connections fill the broker-wide count.
        assert_eq!(
            slots.try_acquire("CLIENT", false).err(),
            Some(SlotRefusal::Broker { limit: 2 })
        );
        drop(brokers);
        assert!(slots.try_acquire("CLIENT", false).is_ok());
    }
}
