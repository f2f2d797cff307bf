//! [`Nodes`]: a 3-node cluster of either system (Sluice or the reference
//! Kafka), so one scenario runs against both.

use sluice_testkit::{ReferenceKafkaCluster, SluiceCluster};

/// A 3-node cluster of either system.
pub trait Nodes {
    fn name(&self) -> &'static str;
    fn addr(&self, id: i32) -> String;
    fn kill(&mut self, id: i32);
    fn start_again(&mut self, id: i32);
}

impl Nodes for SluiceCluster {
    fn name(&self) -> &'static str {
        "sluice"
    }
    fn addr(&self, id: i32) -> String {
        self.broker_addr(id).to_string()
    }
    fn kill(&mut self, id: i32) {
        self.node_mut(id).process.kill().unwrap();
    }
    fn start_again(&mut self, id: i32) {
        self.node_mut(id).process.restart().unwrap();
    }
}

impl Nodes for ReferenceKafkaCluster {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn addr(&self, id: i32) -> String {
        ReferenceKafkaCluster::addr(self, id).to_string()
    }
    fn kill(&mut self, id: i32) {
        ReferenceKafkaCluster::kill(self, id).unwrap();
    }
    fn start_again(&mut self, id: i32) {
        self.restart(id).unwrap();
    }
}
