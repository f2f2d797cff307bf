//! One broker: address, rack, role, the partitions it leads and holds, and
//! its configs with their sources.

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E};
use crate::kafka::model::BrokerDetail;

pub fn render(shell: &Shell, d: &BrokerDetail) -> String {
    let mut b = String::new();
    let br = &d.broker;
    let _ = write!(
        b,
        "<h1>Broker <span id=\"broker-id\">{}</span>{}</h1><div class=\"cards\">\
<div class=\"card\"><div class=\"label\">Address</div><div class=\"value\">{}:{}</div></div>\
<div class=\"card\"><div class=\"label\">Rack</div><div class=\"value\">{}</div></div>\
<div class=\"card\"><div class=\"label\">Leader of</div><div class=\"value\" id=\"leaders\">{}</div></div>\
<div class=\"card\"><div class=\"label\">Replicas</div><div class=\"value\" id=\"replicas\">{}</div></div></div><h2>Configs</h2>",
        br.id,
        if d.controller { " <span class=\"tag\">controller</span>" } else { "" },
        E(&br.host),
        br.port,
        E(br.rack.as_deref().unwrap_or("-")),
        num(d.load.leaders as i64),
        num(d.load.replicas as i64)
    );
    super::configs::table(
        &mut b,
        &d.configs,
        "STATIC_BROKER_CONFIG",
        "only values set for this broker",
    );
    document(shell, &format!("Broker {}", br.id), "/", &b)
}
