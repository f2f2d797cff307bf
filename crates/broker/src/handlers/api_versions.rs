//! ApiVersions: the versions this broker handles, from the protocol crate's
//! table (the same table the decoder enforces, so what is advertised is
//! exactly what is accepted). Unsupported ApiVersions versions never get
//! here: the network layer answers them with the v0 fallback.
//!
//! From v3 on, as a KRaft broker does, the answer also carries this node's
//! supported features and the image's finalized feature levels with the
//! image's offset as their epoch (`kafka-features describe` and
//! `Admin.describeFeatures` read these).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use sluice_protocol::{api_versions_response, with_features, SUPPORTED_APIS};

use crate::context::BrokerContext;
use crate::metadata::records::supported_features;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    if header.request_api_version >= 3
        && !(valid_client_software(req.client_software_name.as_str())
            && valid_client_software(req.client_software_version.as_str()))
    {
        // As Kafka: the error alone, no version list.
        return api_versions_response(&[], ResponseError::InvalidRequest.code());
    }
    let resp = api_versions_response(SUPPORTED_APIS, 0);
    if header.request_api_version < 3 {
        return resp;
    }
    let image = ctx.image.image();
    let supported = supported_features();
    with_features(
        resp,
        header.request_api_version,
        supported.iter().map(|f| {
            (
                f.name.as_str(),
                f.min_supported_version,
                f.max_supported_version,
            )
        }),
        image.features().iter().map(|(n, &l)| (n.as_str(), l)),
        image.provenance().last_offset.0,
    )
}

/// Kafka's rule for ClientSoftwareName/Version (KIP-511):
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_client_software(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

#[cfg(test)]
mod tests {
    use super::valid_client_software;

    #[test]
    fn client_software_names_follow_kip_511() {
        for ok in ["librdkafka", "apache-kafka-java", "2.12.1", "a", "franz-go"] {
            assert!(valid_client_software(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a b", "a_b", ".1"] {
            assert!(!valid_client_software(bad), "{bad}");
        }
    }
}
