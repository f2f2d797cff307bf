//! The raw Kafka protocol connection for the few requests librdkafka does
//! not expose (ApiVersions with features, Metadata's controller id,
//! DescribeLogDirs sizes). It lives in `sluice-client`, shared with the web
//! console; this module only re-exports it under its old path.

pub use sluice_client::{error_text, str_bytes, RawConnection};
