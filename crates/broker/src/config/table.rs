//! The one config table: every broker and topic key Sluice supports, with
//! its type, default, valid range and doc string.
//!
//! Kafka keys keep Kafka's names, units and defaults unless the doc says
//! otherwise; Sluice-only keys start with `sluice.`.

/// Value type of a config key (Kafka's `ConfigDef.Type` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Short,
    Int,
    Long,
    Double,
    String,
    /// Comma-separated list of strings.
    List,
    Password,
    /// A key Kafka does not know (only a dynamic broker config can be one).
    Unknown,
}

impl ConfigType {
    /// The name Kafka's DescribeConfigs v3+ reports (`config_type` field).
    pub fn describe_type(self) -> i8 {
        // org.apache.kafka.common.requests.DescribeConfigsResponse.ConfigType ids
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
            ConfigType::Unknown => 0,
        }
    }
}

/// Valid values of a key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Validator {
    /// Any value of the type.
    Any,
    /// Integer at least this value.
    AtLeast(i64),
    /// Integer in the closed range.
    Between(i64, i64),
    /// Floating point in the closed range.
    BetweenF(f64, f64),
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// Every list element is one of these strings.
    ListOf(&'static [&'static str]),
    /// A comma-separated listener list `NAME://host:port`.
    Listeners,
    /// Non-empty comma-separated list.
    NonEmptyList,
    /// `*`, or `partition:broker` pairs (Kafka's
    /// `ThrottledReplicaListValidator`).
    ThrottledReplicas,
}

/// Whether a key configures the broker or a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Broker,
    Topic,
}

/// How a broker synonym's value converts to the topic key's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    Same,
    HoursToMs,
    MinutesToMs,
}

impl Conversion {
    /// Converts a broker value string to the topic key's unit.
    pub fn apply(self, value: &str) -> Option<String> {
        let factor: i64 = match self {
            Conversion::Same => return Some(value.to_string()),
            Conversion::HoursToMs => 3_600_000,
            Conversion::MinutesToMs => 60_000,
        };
        let v: i64 = value.trim().parse().ok()?;
        Some(v.saturating_mul(factor).to_string())
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct ConfigKey {
    pub name: &'static str,
    pub scope: Scope,
    pub ty: ConfigType,
    /// Default as Kafka writes it; `None` = no default (null).
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub doc: &'static str,
    /// Broker keys that supply a topic key's default, in precedence order.
    pub synonyms: &'static [(&'static str, Conversion)],
    /// Not changeable at runtime. DescribeConfigs reports broker keys as
    /// read-only unless `config::dynamic` accepts them.
    pub read_only: bool,
    pub sensitive: bool,
    /// Accepted and stored, but the value does not change Sluice's behaviour.
    pub no_effect: bool,
}

const fn broker(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey {
        name,
        scope: Scope::Broker,
        ty,
        default,
        validator,
        doc,
        synonyms: &[],
        read_only: true,
        sensitive: false,
        no_effect: false,
    }
}

const fn topic(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    synonyms: &'static [(&'static str, Conversion)],
    doc: &'static str,
) -> ConfigKey {
    ConfigKey {
        name,
        scope: Scope::Topic,
        ty,
        default,
        validator,
        doc,
        synonyms,
        read_only: false,
        sensitive: false,
        no_effect: false,
    }
}

/// A key whose value is a secret: never shown in errors, logs or
/// DescribeConfigs.
const fn sensitive(mut key: ConfigKey) -> ConfigKey {
    key.sensitive = true;
    key
}

const fn no_effect(mut key: ConfigKey) -> ConfigKey {
    key.no_effect = true;
    key
}

use ConfigType as T;
use Conversion as C;
use Validator as V;

const I64_MAX: &str = "9223372036854775807";

/// Every supported key. Broker keys first, then topic keys.
pub static CONFIG_TABLE: &[ConfigKey] = &[
    // ---- broker: identity and listeners ----
    broker("node.id", T::Int, Some("1"), V::AtLeast(0),
        "The node id of this broker; stored in meta.properties and checked on start. Sluice default: 1."),
    broker("listeners", T::String, Some("PLAINTEXT://127.0.0.1:9092"), V::Listeners,
        "Comma-separated listeners NAME://host:port the broker binds. Port 0 binds an ephemeral port. Sluice default: PLAINTEXT://127.0.0.1:9092."),
    broker("advertised.listeners", T::String, None, V::Listeners,
        "Listeners returned to clients in Metadata and FindCoordinator. Default: the value of listeners (with the bound port when it is 0)."),
    broker("controller.listener.names", T::String, None, V::Any,
        "Comma-separated names of the listeners the KRaft controller uses. A node with the controller role must name at least one listener of `listeners` here; a broker-only node must not list them in `listeners` (it uses the first name to reach the controllers). Listeners named here are never returned to clients. Until the cluster wiring lands, Sluice does not bind them."),
    broker("listener.security.protocol.map", T::String,
        Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"), V::Any,
        "Listener name to security protocol. Sluice serves PLAINTEXT, SSL (TLS with the ssl.* keys below), SASL_PLAINTEXT (SASL with the sasl.* keys below) and SASL_SSL (both) listeners. The controller listeners and the inter-broker listener may use any of them too (see sasl.mechanism.inter.broker.protocol and sasl.mechanism.controller.protocol)."),
    // ---- broker: SASL authentication (config/sasl.rs, network/sasl.rs) ----
    broker("sasl.enabled.mechanisms", T::List, Some("GSSAPI"), V::Any,
        "SASL mechanisms a SASL listener (SASL_PLAINTEXT, SASL_SSL) accepts, unless listener.name.<listener>.sasl.enabled.mechanisms says otherwise. Sluice implements PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER; each enabled mechanism needs listener.name.<listener>.<mechanism>.sasl.jaas.config (PLAIN's users are its user_<name>=\"<password>\" options; SCRAM credentials live in the cluster metadata; OAUTHBEARER tokens are checked by Kafka's unsecured validator, alg none with its unsecuredValidator* JAAS options, unless listener.name.<listener>.oauthbearer.sasl.server.callback.handler.class names Kafka's OAuthBearerValidatorCallbackHandler, which verifies signed JWTs with the sasl.oauthbearer.* keys). Kafka's default GSSAPI is not implemented: a SASL listener must name its mechanisms."),
    broker("sasl.oauthbearer.jwks.endpoint.url", T::String, None, V::Any,
        "Where a listener whose OAUTHBEARER server callback handler is Kafka's OAuthBearerValidatorCallbackHandler finds the public keys (a JWKS document) that verify tokens. Sluice reads file: URLs (file:///etc/kafka/jwks.json) at start; http(s) endpoints are refused at start for now."),
    broker("sasl.oauthbearer.expected.audience", T::List, Some(""), V::Any,
        "Audiences a signed OAUTHBEARER token's aud claim must name one of (empty: not checked)."),
    broker("sasl.oauthbearer.expected.issuer", T::String, None, V::Any,
        "The iss claim a signed OAUTHBEARER token must carry (unset: not checked)."),
    broker("sasl.oauthbearer.sub.claim.name", T::String, Some("sub"), V::Any,
        "The claim of a signed OAUTHBEARER token that names its principal (User:<value>)."),
    broker("sasl.oauthbearer.scope.claim.name", T::String, Some("scope"), V::Any,
        "The claim of a signed OAUTHBEARER token that holds its scope."),
    broker("sasl.oauthbearer.clock.skew.seconds", T::Int, Some("30"), V::AtLeast(0),
        "Clock difference tolerated when checking a signed OAUTHBEARER token's exp, iat and nbf."),
    broker("sasl.server.max.receive.size", T::Int, Some("524288"), V::AtLeast(4),
        "The largest request a client may send before it has authenticated; a larger size prefix closes the connection before any of it is buffered."),
    broker("connections.max.reauth.ms", T::Long, Some("0"), V::Any,
        "KIP-368: the longest a SASL session lasts before the client must re-authenticate on its connection (SaslAuthenticate tells the client as session_lifetime_ms); a connection whose session ended is closed at its next request other than re-authentication. 0 or less: sessions never end. Per listener and mechanism: listener.name.<listener>.<mechanism>.connections.max.reauth.ms (mechanism in lower case), or listener.name.<listener>.connections.max.reauth.ms."),
    broker("connection.failed.authentication.delay.ms", T::Int, Some("100"), V::AtLeast(0),
        "How long a connection that failed authentication waits, after its error response, before it is closed."),
    // ---- broker: ACL authorization (config/authorizer.rs, authz/) ----
    broker("authorizer.class.name", T::String, Some(""), V::Any,
        "The authorizer. Empty (the default): no authorization, and CreateAcls/DescribeAcls/DeleteAcls answer SECURITY_DISABLED. org.apache.kafka.metadata.authorizer.StandardAuthorizer turns on Kafka's ACL authorization, with the ACLs stored in the cluster metadata. Any other class is refused at start."),
    broker("super.users", T::String, None, V::Any,
        "Principals allowed every operation whatever the ACLs say, separated by ';' (User:admin;User:broker). Read only with authorizer.class.name set."),
    broker("allow.everyone.if.no.acl.found", T::Boolean, Some("false"), V::Any,
        "With the authorizer on: whether an operation on a resource that no ACL covers is allowed to everyone."),
    // ---- broker: TLS of SSL listeners (config/ssl.rs, network/tls.rs) ----
    // Each ssl.* key may be given per listener as listener.name.<listener>.ssl.*, which wins over the broker-wide key.
    broker("ssl.keystore.type", T::String, Some("JKS"), V::Any,
        "Format of the keystore of SSL listeners. Sluice reads only PEM (set ssl.keystore.type=PEM); JKS and PKCS12 are refused at start. Kafka's default, JKS, is kept so that a keystore given without a type is refused as Kafka would read it."),
    broker("ssl.keystore.location", T::String, None, V::Any,
        "Path of the keystore of SSL listeners: with ssl.keystore.type=PEM, one PEM file holding the private key (unencrypted PKCS#8, PKCS#1 or SEC1) and the certificate chain, the broker's certificate first. Read at start. Per listener: listener.name.<listener>.ssl.keystore.location; changed at runtime (per broker, with that prefix) it is reloaded, also when the same path is named again after the file was rewritten."),
    sensitive(broker("ssl.keystore.key", T::Password, None, V::Any,
        "The private key of SSL listeners as PEM text (with ssl.keystore.type=PEM and ssl.keystore.certificate.chain), instead of ssl.keystore.location. Encrypted keys are refused at start.")),
    sensitive(broker("ssl.keystore.certificate.chain", T::Password, None, V::Any,
        "The certificate chain of SSL listeners as PEM text, the broker's certificate first (with ssl.keystore.key).")),
    sensitive(broker("ssl.key.password", T::Password, None, V::Any,
        "Password of an encrypted private key. Sluice reads unencrypted keys only: an encrypted key is refused at start with an error naming this key.")),
    broker("ssl.truststore.type", T::String, Some("JKS"), V::Any,
        "Format of the truststore of SSL listeners; only PEM is supported (JKS and PKCS12 are refused at start)."),
    broker("ssl.truststore.location", T::String, None, V::Any,
        "Path of a PEM file of the CA certificates that verify client certificates (ssl.client.auth=required or requested). Read at start."),
    sensitive(broker("ssl.truststore.certificates", T::Password, None, V::Any,
        "The CA certificates that verify client certificates, as PEM text, instead of ssl.truststore.location.")),
    broker("ssl.client.auth", T::String, Some("none"), V::Any,
        "Whether SSL listeners ask clients for a certificate: required (mutual TLS: a client without a certificate the truststore verifies is refused in the handshake), requested (verified if sent) or none. A verified certificate's subject, in RFC 2253 form and mapped by ssl.principal.mapping.rules, names the connection's User principal; without one it is User:ANONYMOUS. A SASL_SSL listener takes it only from listener.name.<listener>.ssl.client.auth (as Kafka), and its principal is the SASL one."),
    broker("ssl.allow.dn.changes", T::Boolean, Some("false"), V::Any,
        "Whether a keystore reloaded at runtime (KIP-226: listener.name.<listener>.ssl.keystore.* changed with kafka-configs) may hold a certificate for another subject than the one in use. As in Kafka, false refuses such a reload, since clients and peers verify the broker by that name. Per listener: listener.name.<listener>.ssl.allow.dn.changes."),
    broker("ssl.allow.san.changes", T::Boolean, Some("false"), V::Any,
        "Whether a keystore reloaded at runtime (KIP-226) may drop SubjectAltNames of the certificate in use. As in Kafka, false refuses a new certificate unless its SubjectAltNames include all the current ones (adding names is allowed), since clients and peers verify the broker by those names. Per listener: listener.name.<listener>.ssl.allow.san.changes."),
    broker("ssl.enabled.protocols", T::List, Some("TLSv1.2,TLSv1.3"), V::Any,
        "TLS versions SSL listeners accept. Sluice speaks TLSv1.2 and TLSv1.3; older names are ignored with a warning, and a list without either is refused."),
    broker("ssl.principal.mapping.rules", T::String, Some("DEFAULT"), V::Any,
        "Rules that map a client certificate's subject (RFC 2253, as Java prints it: CN=alice,OU=eng,O=acme) to a principal name, as Kafka's: a comma-separated list of DEFAULT (the subject itself) and RULE:pattern/replacement/ with an optional L or U to lower- or upper-case the result. The first rule whose pattern matches the whole subject decides; when none does, the connection is closed."),
    // ---- broker: cluster roles and the metadata quorum (config/roles.rs) ----
    broker("process.roles", T::List, None, V::Any,
        "The roles of this node: `broker`, `controller`, or `broker,controller` (combined). Unset: Sluice runs as a one-node cluster that is its own controller and needs none of the keys below (Kafka 4 requires this key). Set: node.id, controller.quorum.voters and the listener rules of KRaft apply, and the log dirs must have been formatted with `sluice storage format`."),
    broker("controller.quorum.voters", T::List, None, V::Any,
        "The static voter set of the metadata quorum, `id@host:port,...` (an IPv6 host in brackets), one entry per controller at its controller listener. A node with the controller role must be in it; a broker-only node must not."),
    broker("controller.quorum.bootstrap.servers", T::List, None, V::Any,
        "Controllers to bootstrap from, `host:port,...` (KIP-853 dynamic quorums). Parsed and checked, but Sluice does not implement dynamic voters: controller.quorum.voters must be set."),
    broker("controller.quorum.election.timeout.ms", T::Int, Some("1000"), V::AtLeast(0),
        "How long a voter waits without hearing from a leader before it starts an election."),
    broker("controller.quorum.fetch.timeout.ms", T::Int, Some("2000"), V::AtLeast(0),
        "How long a voter waits without a successful fetch from the leader before it becomes a candidate."),
    broker("inter.broker.listener.name", T::String, None, V::Any,
        "The listener brokers use to reach each other; must be a listener of `listeners` and not a controller listener. Default: the first non-controller listener."),
    broker("security.inter.broker.protocol", T::String, None, V::Any,
        "The security protocol brokers use to reach each other: the listener named after it (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL) becomes the inter-broker listener. Only one of this key and inter.broker.listener.name may be set; Kafka's default PLAINTEXT applies when neither is (the first non-controller listener here)."),
    broker("sasl.mechanism.inter.broker.protocol", T::String, Some("GSSAPI"), V::Any,
        "The SASL mechanism a broker logs in to the other brokers with when the inter-broker listener speaks SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's default GSSAPI is not implemented, so it must be set). The username and password come from the listener's listener.name.<listener>.<mechanism>.sasl.jaas.config (else sasl.jaas.config); over TLS the listener's ssl.truststore.* verify the peer and its ssl.keystore.* are shown when the peer asks for a certificate."),
    broker("sasl.mechanism.controller.protocol", T::String, Some("GSSAPI"), V::Any,
        "The SASL mechanism nodes log in to the controllers with (the controller channel and the metadata quorum's RPC) when the first of controller.listener.names speaks SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, with the username and password of that listener's JAAS entry, as sasl.mechanism.inter.broker.protocol."),
    sensitive(broker("sasl.jaas.config", T::Password, None, V::Any,
        "The JAAS entry a node takes its own SASL username and password from when the listener it dials has no listener.name.<listener>.<mechanism>.sasl.jaas.config.")),
    broker("broker.rack", T::String, None, V::Any,
        "The rack of this broker, used by rack-aware replica placement and returned in Metadata and DescribeCluster."),
    broker("broker.session.timeout.ms", T::Int, Some("1200"), V::AtLeast(1),
        "A broker that sends no heartbeat to the active controller for this long is fenced, and its partitions get new leaders: most of a leader failover is this wait. The active controller checks every twentieth of it (at most 250 ms), and warns of any heartbeat that comes more than half of it after the broker's previous one. Sluice default: 1200 (Kafka: 9000), six heartbeat intervals: under `sluice-bench replication`'s load, which keeps a 2-core machine busy, no heartbeat came even half a session late."),
    broker("broker.heartbeat.interval.ms", T::Int, Some("200"), V::AtLeast(1),
        "How often a broker heartbeats to the active controller; must not exceed broker.session.timeout.ms. Sluice default: 200 (Kafka: 2000)."),
    broker("metadata.log.dir", T::String, None, V::Any,
        "The directory of the metadata log (`__cluster_metadata-0`). Default: the first log dir. Formatted by `sluice storage format` like the log dirs."),
    broker("log.dirs", T::List, None, V::NonEmptyList,
        "Directories holding the log data. Overrides log.dir when set."),
    broker("log.dir", T::String, Some("./data"), V::Any,
        "The directory holding the log data, used when log.dirs is not set. Sluice default: ./data."),
    broker("auto.create.topics.enable", T::Boolean, Some("true"), V::Any,
        "Create an unknown topic named in a Metadata request that allows auto-creation. As in Kafka, that request is answered UNKNOWN_TOPIC_OR_PARTITION with no partitions and the topic appears on the next one; Produce never creates topics."),
    broker("num.partitions", T::Int, Some("1"), V::AtLeast(1),
        "Partition count of auto-created topics and of CreateTopics requests asking for the default (-1)."),
    broker("default.replication.factor", T::Int, Some("1"), V::AtLeast(1),
        "Replication factor of auto-created topics and of CreateTopics requests asking for the default (-1). Without process.roles Sluice is one node and only 1 is valid."),
    broker("delete.topic.enable", T::Boolean, Some("true"), V::Any,
        "Whether DeleteTopics may delete topics."),
    // ---- broker: replica fetchers (the follower side of replication) ----
    broker("num.replica.fetchers", T::Int, Some("1"), V::AtLeast(1),
        "Number of fetcher tasks used to replicate records from each source broker. The total number of fetchers on each broker is bound by num.replica.fetchers multiplied by the number of brokers in the cluster. Increasing this value can increase the degree of I/O parallelism in the follower and leader broker at the cost of higher CPU and memory utilization. Read at start: a dynamic change is refused (Kafka resizes the pool at runtime)."),
    broker("replica.fetch.wait.max.ms", T::Int, Some("500"), V::AtLeast(0),
        "The maximum wait time for each fetcher request issued by follower replicas. This value should always be less than the replica.lag.time.max.ms at all times to prevent frequent shrinking of ISR for low throughput topics."),
    broker("replica.fetch.min.bytes", T::Int, Some("1"), V::AtLeast(0),
        "Minimum bytes expected for each fetch response. If not enough bytes, wait up to replica.fetch.wait.max.ms (broker config)."),
    broker("replica.fetch.max.bytes", T::Int, Some("1048576"), V::AtLeast(0),
        "The number of bytes of messages to attempt to fetch for each partition. This is not an absolute maximum, if the first record batch in the first non-empty partition of the fetch is larger than this value, the record batch will still be returned to ensure that progress can be made. The maximum record batch size accepted by the broker is defined via message.max.bytes (broker config) or max.message.bytes (topic config)."),
    broker("replica.fetch.response.max.bytes", T::Int, Some("10485760"), V::AtLeast(0),
        "Maximum bytes expected for the entire fetch response. Records are fetched in batches, and if the first record batch in the first non-empty partition of the fetch is larger than this value, the record batch will still be returned to ensure that progress can be made. As such, this is not an absolute maximum. The maximum record batch size accepted by the broker is defined via message.max.bytes (broker config) or max.message.bytes (topic config). Sluice's follower refuses a response frame larger than this plus the largest batch any of its partitions may hold (plus 1 MiB of framing), before decoding it."),
    broker("replica.fetch.backoff.ms", T::Int, Some("1000"), V::AtLeast(0),
        "The amount of time to sleep when fetch partition error occurs."),
    broker("replica.socket.timeout.ms", T::Int, Some("30000"), V::Any,
        "The socket timeout for network requests. Its value should be at least replica.fetch.wait.max.ms."),
    // ---- broker: network ----
    broker("socket.request.max.bytes", T::Int, Some("104857600"), V::AtLeast(1),
        "The largest request (in bytes) a connection may send; bigger frames close the connection."),
    broker("queued.max.request.bytes", T::Long, Some("536870912"), V::AtLeast(-1),
        "Bytes of requests all connections may hold together before the broker stops reading sockets; -1 or 0 = unbounded. Budget is taken as request bytes arrive, not when a size prefix claims them: a connection holds what it has received plus at most its share of the pool (this value / max.connections, 4 KiB to 1 MiB), and when the pool is used up one request at a time may finish past it (as Kafka's pool lets one request exceed it). Sluice default: 536870912 (Kafka: -1)."),
    broker("max.connections", T::Int, Some("10000"), V::AtLeast(0),
        "Maximum number of client connections at a time, over every listener. A connection beyond it is accepted and closed at once, with a WARN naming the limit (at most one per 10 s per listener, with the count of connections refused since); Kafka instead stops accepting, leaving new clients waiting without a word. listener.name.<listener>.max.connections limits one listener (default: this value). The inter-broker listener of a broker with several listeners is outside this limit (only its own applies), but its connections count in it, as in Kafka. A dynamic broker config, as is the listener key: a lowered limit closes no live connection, and each connection's share of queued.max.request.bytes stays the one of the value at start. Sluice default: 10000 (Kafka: 2147483647)."),
    broker("connections.max.idle.ms", T::Long, Some("600000"), V::Any,
        "Close a connection that has no request in flight and has read or written no byte for this long. A negative value never closes idle connections."),
    broker("sluice.request.stall.timeout.ms", T::Long, Some("30000"), V::AtLeast(1),
        "Close a connection whose request has begun to arrive but gets no further byte for this long (time spent waiting for queued.max.request.bytes budget does not count), freeing the request bytes it holds, with a WARN. Kafka has no such key (there a stalled request holds its bytes until connections.max.idle.ms); the default matches Kafka clients' request.timeout.ms (30000), after which the client has given up on that request anyway. On an SSL listener the TLS handshake must also finish within this time."),
    broker("message.max.bytes", T::Int, Some("1048588"), V::AtLeast(0),
        "Largest record batch size allowed, the default of the topic config max.message.bytes."),
    // ---- broker: log defaults (topic synonyms) ----
    broker("log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1048576),
        "Maximum size of a single log segment file; default of segment.bytes."),
    broker("log.roll.ms", T::Long, None, V::AtLeast(1),
        "Time after which a new segment is rolled; default of segment.ms. If unset, log.roll.hours is used."),
    broker("log.roll.hours", T::Int, Some("168"), V::AtLeast(1),
        "Time in hours after which a new segment is rolled, used when log.roll.ms is unset."),
    broker("log.retention.ms", T::Long, None, V::AtLeast(-1),
        "Time to keep a segment before deleting it; -1 = no time limit. Default of retention.ms; if unset, log.retention.minutes, then log.retention.hours."),
    broker("log.retention.minutes", T::Int, None, V::AtLeast(-1),
        "Retention time in minutes, used when log.retention.ms is unset."),
    broker("log.retention.hours", T::Int, Some("168"), V::AtLeast(-1),
        "Retention time in hours, used when log.retention.ms and log.retention.minutes are unset."),
    broker("log.retention.bytes", T::Long, Some("-1"), V::AtLeast(-1),
        "Maximum size of a partition's log before old segments are deleted; -1 = no size limit. Default of retention.bytes."),
    broker("log.retention.check.interval.ms", T::Long, Some("300000"), V::AtLeast(1),
        "How often the broker checks for segments eligible for deletion by retention."),
    broker("log.index.size.max.bytes", T::Int, Some("10485760"), V::AtLeast(4),
        "Maximum size of an offset or time index file; default of segment.index.bytes."),
    broker("log.index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0),
        "Bytes of records between offset index entries; default of index.interval.bytes."),
    broker("log.flush.interval.messages", T::Long, Some(I64_MAX), V::AtLeast(1),
        "Records appended before the log is fsynced; default of flush.messages. 1 = acknowledge only after fsync."),
    broker("log.flush.interval.ms", T::Long, None, V::AtLeast(0),
        "Maximum time a record stays unflushed; default of flush.ms. If unset, log.flush.scheduler.interval.ms."),
    broker("log.flush.scheduler.interval.ms", T::Long, Some(I64_MAX), V::AtLeast(0),
        "How often the flusher checks whether a log needs flushing (by flush.ms)."),
    broker("log.flush.offset.checkpoint.interval.ms", T::Int, Some("60000"), V::AtLeast(0),
        "How often recovery points are checkpointed."),
    broker("log.preallocate", T::Boolean, Some("false"), V::Any,
        "Preallocate segment files; default of preallocate."),
    broker("log.message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(&["CreateTime", "LogAppendTime"]),
        "Default of message.timestamp.type."),
    broker("log.message.timestamp.before.max.ms", T::Long, Some(I64_MAX), V::AtLeast(0),
        "Default of message.timestamp.before.max.ms."),
    broker("log.message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0),
        "Default of message.timestamp.after.max.ms."),
    broker("log.segment.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0),
        "Delay before a deleted segment's files are removed; default of file.delete.delay.ms."),
    broker("log.cleanup.policy", T::List, Some("delete"), V::ListOf(&["compact", "delete"]),
        "Default of cleanup.policy."),
    no_effect(broker("log.roll.jitter.ms", T::Long, None, V::AtLeast(0),
        "Default of segment.jitter.ms. Accepted; Sluice rolls without jitter.")),
    no_effect(broker("log.roll.jitter.hours", T::Int, Some("0"), V::AtLeast(0),
        "Jitter in hours, used when log.roll.jitter.ms is unset. Accepted; Sluice rolls without jitter.")),
    broker("log.cleaner.delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0),
        "Default of delete.retention.ms."),
    broker("log.cleaner.min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0),
        "Default of min.compaction.lag.ms."),
    broker("log.cleaner.max.compaction.lag.ms", T::Long, Some(I64_MAX), V::AtLeast(1),
        "Default of max.compaction.lag.ms."),
    broker("log.cleaner.min.cleanable.ratio", T::Double, Some("0.5"), V::BetweenF(0.0, 1.0),
        "Default of min.cleanable.dirty.ratio."),
    broker("log.cleaner.enable", T::Boolean, Some("true"), V::Any,
        "Run the log cleaner (compaction of cleanup.policy=compact topics)."),
    broker("log.cleaner.backoff.ms", T::Long, Some("15000"), V::AtLeast(0),
        "How often the log cleaner looks for a log to clean (one log per run)."),
    broker("log.cleaner.dedupe.buffer.size", T::Long, Some("134217728"), V::AtLeast(1024),
        "Memory budget of the cleaner's key -> offset map; when it fills, a pass cleans only up to the offsets it covers."),
    broker("log.cleaner.io.max.bytes.per.second", T::Double, Some("1.7976931348623157E308"), V::Any,
        "Throttle on the cleaner's reads plus writes, in bytes per second."),
    broker("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1),
        "When a producer sets acks to \"all\" (or \"-1\"), min.insync.replicas specifies the minimum number of replicas that must acknowledge a write for the write to be considered successful. If this minimum cannot be met, then the producer will raise an exception (either NotEnoughReplicas or NotEnoughReplicasAfterAppend). Strict: the high watermark does not advance while the ISR is smaller (at most the replication factor counts)."),
    broker("replica.lag.time.max.ms", T::Long, Some("30000"), V::AtLeast(0),
        "If a follower hasn't sent any fetch requests or hasn't consumed up to the leaders log end offset for at least this time, the leader will remove the follower from isr"),
    broker("replica.selector.class", T::String, None, V::OneOf(&["org.apache.kafka.common.replica.RackAwareReplicaSelector"]),
        "The replica selector that picks the replica a consumer fetches from (KIP-392): the leader answers a consumer's Fetch (v11+, with the consumer's client.rack) with PreferredReadReplica when it picks a follower. Unset (the default): consumers fetch from the leader. Sluice implements Kafka's org.apache.kafka.common.replica.RackAwareReplicaSelector: an in-sync follower in the consumer's rack, unless the leader is in it. Followers serve consumer fetches up to their own high watermark whatever this is set to."),
    broker("replica.high.watermark.checkpoint.interval.ms", T::Long, Some("5000"), V::AtLeast(1),
        "The frequency with which the high watermark is saved out to disk"),
    broker("unclean.leader.election.enable", T::Boolean, Some("false"), V::Any,
        "Default of the topic unclean.leader.election.enable, read by the controller: when no in-sync (or eligible) replica of a partition is left, elect any live replica and mark the partition RECOVERING (KIP-704); acknowledged records may be lost. No effect on a single broker."),
    broker("auto.leader.rebalance.enable", T::Boolean, Some("true"), V::Any,
        "Enables automatic leader balancing: the active controller moves the leadership of every partition whose leader is not its preferred replica (the first of its replicas) back to it once that replica is in the ISR and usable, leader.imbalance.check.interval.seconds after it sees the imbalance (at most 1000 elections per run; Kafka 4.x has no leader.imbalance.per.broker.percentage threshold). Read by the controller; no effect on a single broker."),
    broker("leader.imbalance.check.interval.seconds", T::Long, Some("300"), V::AtLeast(1),
        "How long after the controller sees a partition led by a replica other than its preferred one it runs the automatic leader balance (auto.leader.rebalance.enable)."),
    broker("compression.type", T::String, Some("producer"), V::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Default of the topic compression.type: 'producer' stores batches as the producer compressed them; a codec (or 'uncompressed') re-encodes batches in another codec before they are written."),
    broker("num.recovery.threads.per.data.dir", T::Int, Some("2"), V::AtLeast(1),
        "Threads per data directory used to recover logs at start."),
    // ---- broker: group coordinator ----
    broker("offsets.topic.num.partitions", T::Int, Some("50"), V::AtLeast(1),
        "Partitions of the internal __consumer_offsets topic (used when it is created; a group's partition is abs(hashCode(group.id)) % partitions)."),
    broker("offsets.topic.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1048576),
        "segment.bytes of the __consumer_offsets topic."),
    broker("offsets.topic.replication.factor", T::Short, Some("3"), V::AtLeast(1),
        "Replication factor of __consumer_offsets. Stored and exposed; until partitions are replicated (issue 16 part 2) the topic has one replica whatever this says."),
    broker("offsets.retention.minutes", T::Int, Some("10080"), V::AtLeast(1),
        "Committed offsets of a group without members are deleted this long after the group became empty (standalone commits: after the commit)."),
    broker("offsets.retention.check.interval.ms", T::Long, Some("600000"), V::AtLeast(1),
        "How often expired committed offsets are looked for."),
    broker("offsets.commit.timeout.ms", T::Int, Some("5000"), V::AtLeast(1),
        "Longest an offset commit waits for its write to __consumer_offsets. Sluice answers a commit when its batch is written (after at most group.coordinator.append.linger.ms), so commits never wait on this timer."),
    broker("group.coordinator.append.linger.ms", T::Int, Some("5"), V::AtLeast(0),
        "How long the group coordinator waits for more OffsetCommit and ConsumerGroupHeartbeat writes to the same __consumer_offsets partition before writing them as one batch (one append, one flush when flush.messages asks for it). Their answers go out when that batch is written; 0 writes each at once."),
    broker("offset.metadata.max.bytes", T::Int, Some("4096"), V::Any,
        "Longest metadata string an offset commit may carry (longer: OFFSET_METADATA_TOO_LARGE)."),
    broker("group.initial.rebalance.delay.ms", T::Int, Some("3000"), V::AtLeast(0),
        "How long the first rebalance of an empty group waits for more members to join (extended by each new member, bounded by the rebalance timeout)."),
    broker("group.min.session.timeout.ms", T::Int, Some("6000"), V::Any,
        "Smallest session.timeout.ms a member may ask for (smaller: INVALID_SESSION_TIMEOUT)."),
    broker("group.max.session.timeout.ms", T::Int, Some("1800000"), V::Any,
        "Largest session.timeout.ms a member may ask for (larger: INVALID_SESSION_TIMEOUT)."),
    broker("group.max.size", T::Int, Some("2147483647"), V::AtLeast(1),
        "Most members a classic group may have (more: GROUP_MAX_SIZE_REACHED)."),
    // ---- consumer groups (KIP-848) ----
    broker("group.consumer.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1),
        "Session timeout of consumer-protocol members: a member without a ConsumerGroupHeartbeat for this long is removed and its partitions move (clamped to group.consumer.min/max.session.timeout.ms)."),
    broker("group.consumer.min.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1),
        "Smallest allowed group.consumer.session.timeout.ms."),
    broker("group.consumer.max.session.timeout.ms", T::Int, Some("60000"), V::AtLeast(1),
        "Largest allowed group.consumer.session.timeout.ms."),
    broker("group.consumer.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1),
        "Heartbeat interval the coordinator gives consumer-protocol members (clamped to group.consumer.min/max.heartbeat.interval.ms)."),
    broker("group.consumer.min.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1),
        "Smallest allowed group.consumer.heartbeat.interval.ms."),
    broker("group.consumer.max.heartbeat.interval.ms", T::Int, Some("15000"), V::AtLeast(1),
        "Largest allowed group.consumer.heartbeat.interval.ms."),
    broker("group.consumer.max.size", T::Int, Some("2147483647"), V::AtLeast(1),
        "Most members a consumer-protocol group may have (more: GROUP_MAX_SIZE_REACHED)."),
    broker("group.consumer.assignors", T::List, Some("uniform,range"), V::ListOf(&["uniform", "range", "org.apache.kafka.coordinator.group.assignor.UniformAssignor", "org.apache.kafka.coordinator.group.assignor.RangeAssignor"]),
        "Server assignors consumer-protocol members may ask for (group.remote.assignor); the first one is the default."),
    // ---- replication throttles (kafka-reassign-partitions --throttle; the
    // rates themselves are dynamic-only keys, `dynamic::DYNAMIC_ONLY_KEYS`) ----
    broker("replication.quota.window.num", T::Int, Some("11"), V::AtLeast(1),
        "Samples the replication throttles measure their rate over (at least all but one of them count as elapsed, so a quiet start allows a burst of (num - 1) windows at the rate)."),
    broker("replication.quota.window.size.seconds", T::Int, Some("1"), V::AtLeast(1),
        "Length of one sample of the replication throttles' rate."),
    // ---- client quotas (AlterClientQuotas; crate::quota) ----
    broker("quota.window.num", T::Int, Some("11"), V::AtLeast(1),
        "Samples a client quota's rate is measured over (produce, fetch and request quotas); at least all but one count as elapsed, so a quiet client may send a burst of (num - 1) windows at its quota before it is throttled."),
    broker("quota.window.size.seconds", T::Int, Some("1"), V::AtLeast(1),
        "Length of one sample of a client quota's rate."),
    broker("max.connection.creation.rate", T::Int, Some("2147483647"), V::AtLeast(0),
        "New connections per second the broker accepts over its listeners (not the inter-broker listener when there are others; KIP-612). Over it, a listener waits before serving its next connection (at most one quota window). listener.name.<listener>.max.connection.creation.rate limits one listener (default: this value, which thus also limits the inter-broker listener on its own)."),
    broker("max.connections.per.ip", T::Int, Some("2147483647"), V::AtLeast(0),
        "Connections one client IP may have open at once, over every listener; one more is closed as soon as it is accepted (Kafka's ConnectionQuotas). 0 is allowed only with max.connections.per.ip.overrides."),
    broker("max.connections.per.ip.overrides", T::String, Some(""), V::Any,
        "Per-IP exceptions to max.connections.per.ip: comma-separated host:count pairs (a host name is resolved when the value is applied), e.g. 10.0.0.5:200,localhost:10."),
    broker("controller.quota.window.num", T::Int, Some("11"), V::AtLeast(1),
        "Windows of a controller mutation quota's token bucket (controller_mutation_rate, KIP-599): the bucket holds this many windows' worth of partition mutations at the quota."),
    broker("controller.quota.window.size.seconds", T::Int, Some("1"), V::AtLeast(1),
        "Length of one window of a controller mutation quota's token bucket."),
    // ---- broker: Sluice-only ----
    broker("sluice.max.open.segment.files", T::Int, Some("1024"), V::AtLeast(16),
        "Upper bound on segment files the broker keeps open at once (least recently used are closed)."),
    broker("sluice.decompression.memory.bytes", T::Long, Some("1073741824"), V::AtLeast(1048576),
        "Bytes the whole broker may hold at once for decoding records: decompressed batches the produce path reads (keys on compacted topics, timestamp checks, re-encoding into a topic's compression.type), their re-encoding buffers, codec windows, and the log cleaner's decoding. When it is spent, the oldest decoding waits (up to 30 s) for bytes to come back and the others are refused: a produce with the retriable THROTTLING_QUOTA_EXCEEDED (nothing is written), the cleaner until its next run. Default: 4 x the 256 MiB a single batch may decompress to, so that one batch at that cap and its re-encoding fit."),
    // ---- idempotent producers (issue 5) ----
    broker("producer.id.expiration.ms", T::Int, Some("86400000"), V::AtLeast(1),
        "Time a partition keeps an idle idempotent producer's state (its last sequence numbers) after the producer's last write."),
    broker("sluice.max.producers.per.partition", T::Int, Some("10000"), V::AtLeast(1),
        "Most idempotent producers a partition tracks; a new producer beyond it is refused with THROTTLING_QUOTA_EXCEEDED until idle producers expire (producer.id.expiration.ms)."),
    // ---- transactions (issue 19) ----
    broker("transaction.partition.verification.enable", T::Boolean, Some("true"), V::Any,
        "KIP-890 part 1: before a client's transactional batch may start a transaction on a partition, its leader asks the transaction coordinator whether the partition is in the producer's ongoing transaction; a late batch of an aborted transaction is then refused (INVALID_TXN_STATE) instead of opening a transaction no coordinator knows (a hanging transaction that stops the last stable offset)."),
    broker("sluice.metrics.listener", T::String, Some("127.0.0.1:9644"), V::Any,
        "host:port of the HTTP endpoint serving Prometheus metrics at /metrics and readiness at /health (200 once log recovery finished). A bare port means that port on 127.0.0.1; port 0 (`0` or `host:0`) binds an ephemeral port (printed at start); empty disables it. If the address cannot be bound the broker logs an error and runs without metrics."),
    broker("sluice.console.listener", T::String, Some(""), V::Any,
        "host:port of the built-in web console (the pages of `sluice console`, served by the broker itself and speaking the Kafka protocol to its first PLAINTEXT listener). Empty (the default) disables it; a bare port means that port on 127.0.0.1; port 0 binds an ephemeral port (printed at start). It has no authentication: keep it on loopback. If the address cannot be bound the broker logs an error and runs without it."),
    broker("sluice.console.allow.writes", T::Boolean, Some("false"), V::Any,
        "Whether the broker's built-in web console (sluice.console.listener) may change the cluster: create topics, produce messages, reset consumer group offsets. Read-only by default."),
    // ---- topic keys ----
    topic("segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1048576), &[("log.segment.bytes", C::Same)],
        "Maximum size of a single segment file of this topic."),
    topic("segment.ms", T::Long, Some("604800000"), V::AtLeast(1), &[("log.roll.ms", C::Same), ("log.roll.hours", C::HoursToMs)],
        "Time after which the active segment is rolled even if not full."),
    topic("segment.index.bytes", T::Int, Some("10485760"), V::AtLeast(4), &[("log.index.size.max.bytes", C::Same)],
        "Maximum size of an index file."),
    topic("index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0), &[("log.index.interval.bytes", C::Same)],
        "Bytes of records between offset index entries."),
    topic("retention.ms", T::Long, Some("604800000"), V::AtLeast(-1),
        &[("log.retention.ms", C::Same), ("log.retention.minutes", C::MinutesToMs), ("log.retention.hours", C::HoursToMs)],
        "Time a segment is kept after its last record; -1 = forever."),
    topic("retention.bytes", T::Long, Some("-1"), V::Any, &[("log.retention.bytes", C::Same)],
        "Maximum size of a partition before old segments are deleted; -1 = no limit."),
    topic("flush.messages", T::Long, Some(I64_MAX), V::AtLeast(1), &[("log.flush.interval.messages", C::Same)],
        "Records appended before an fsync; 1 = every produce is acknowledged only after its fsync (group commit)."),
    topic("flush.ms", T::Long, Some(I64_MAX), V::AtLeast(0),
        &[("log.flush.interval.ms", C::Same), ("log.flush.scheduler.interval.ms", C::Same)],
        "Maximum time a record stays unflushed."),
    topic("max.message.bytes", T::Int, Some("1048588"), V::AtLeast(0), &[("message.max.bytes", C::Same)],
        "Largest record batch this topic accepts."),
    topic("message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(&["CreateTime", "LogAppendTime"]),
        &[("log.message.timestamp.type", C::Same)],
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time."),
    topic("message.timestamp.before.max.ms", T::Long, Some(I64_MAX), V::AtLeast(0),
        &[("log.message.timestamp.before.max.ms", C::Same)],
        "With CreateTime, how far in the past a record timestamp may be."),
    topic("message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0),
        &[("log.message.timestamp.after.max.ms", C::Same)],
        "With CreateTime, how far in the future a record timestamp may be."),
    topic("file.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0), &[("log.segment.delete.delay.ms", C::Same)],
        "Delay before a deleted segment's files are removed."),
    topic("preallocate", T::Boolean, Some("false"), V::Any, &[("log.preallocate", C::Same)],
        "Preallocate segment files when rolling."),
    topic("cleanup.policy", T::List, Some("delete"), V::ListOf(&["compact", "delete"]), &[("log.cleanup.policy", C::Same)],
        "delete: remove old segments by retention; compact: keep the latest record per key (records without a key are rejected); compact,delete: both."),
    topic("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1), &[("min.insync.replicas", C::Same)],
        "When a producer sets acks to \"all\" (or \"-1\"), this configuration specifies the minimum number of replicas that must acknowledge a write for the write to be considered successful (else NOT_ENOUGH_REPLICAS, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank after the append). Strict: the high watermark does not advance while the ISR is smaller; at most the replication factor counts, so a one-replica partition always has enough."),
    topic("unclean.leader.election.enable", T::Boolean, Some("false"), V::Any,
        &[("unclean.leader.election.enable", C::Same)],
        "Whether the controller may elect a live replica outside the ISR (and ELR) when none of them is left, at the risk of losing acknowledged records; the partition is marked RECOVERING until its new leader clears it (KIP-704). No effect on a single broker."),
    topic("leader.replication.throttled.replicas", T::List, Some(""), V::ThrottledReplicas, &[],
        "Replicas whose replication the leader side throttles, as [PartitionId]:[BrokerId],... or '*' for every replica of the topic (kafka-reassign-partitions --throttle sets it): the leader broker named with a partition counts what it serves that partition's followers against its leader.replication.throttled.rate."),
    topic("follower.replication.throttled.replicas", T::List, Some(""), V::ThrottledReplicas, &[],
        "Replicas whose replication the follower side throttles, as [PartitionId]:[BrokerId],... or '*' for every replica of the topic (kafka-reassign-partitions --throttle sets it): the follower broker named with a partition counts what it fetches for it against its follower.replication.throttled.rate."),
    no_effect(topic("segment.jitter.ms", T::Long, Some("0"), V::AtLeast(0), &[("log.roll.jitter.ms", C::Same), ("log.roll.jitter.hours", C::HoursToMs)],
        "Random jitter subtracted from segment.ms. Accepted; Sluice rolls without jitter.")),
    topic("delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0), &[("log.cleaner.delete.retention.ms", C::Same)],
        "How long tombstones (null values) are kept on compacted topics, counted from the newest record of their batch."),
    topic("min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0), &[("log.cleaner.min.compaction.lag.ms", C::Same)],
        "Minimum time a record stays uncompacted."),
    topic("max.compaction.lag.ms", T::Long, Some("9223372036854775807"), V::AtLeast(1), &[("log.cleaner.max.compaction.lag.ms", C::Same)],
        "Maximum time a record stays uncompacted: a log with older dirty records is cleaned whatever its dirty ratio."),
    topic("min.cleanable.dirty.ratio", T::Double, Some("0.5"), V::BetweenF(0.0, 1.0), &[("log.cleaner.min.cleanable.ratio", C::Same)],
        "Dirty ratio above which a compacted log is cleaned."),
    topic("compression.type", T::String, Some("producer"), V::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), &[("compression.type", C::Same)],
        "'producer' keeps each batch as the producer compressed it (no decoding). A codec, or 'uncompressed', is the codec batches are stored in: a batch in another codec is re-encoded (same offsets, timestamps, headers and producer fields) before it is appended."),
];

/// Looks a key up in the table.
pub fn lookup(scope: Scope, name: &str) -> Option<&'static ConfigKey> {
    CONFIG_TABLE
        .iter()
        .find(|k| k.scope == scope && k.name == name)
}

/// All keys of one scope, in table order.
pub fn keys(scope: Scope) -> impl Iterator<Item = &'static ConfigKey> {
    CONFIG_TABLE.iter().filter(move |k| k.scope == scope)
}
