//! Resources: two static ones, one that changes every few seconds (and notifies
//! subscribers), and a template whose reads echo the id in the URI.

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use crate::tools::TEST_IMAGE_BASE64;

pub const STATIC_TEXT_URI: &str = "test://static-text";
pub const STATIC_BINARY_URI: &str = "test://static-binary";
pub const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";

/// Every resource, in `resources/list` order (the suite reads the first one).
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT_URI, "static-text")
            .with_title("Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY_URI, "static-binary")
            .with_title("Static Binary Resource")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type("image/png"),
        Resource::new(WATCHED_URI, "watched-resource")
            .with_title("Watched Resource")
            .with_description("A resource that auto-updates every 3 seconds")
            .with_mime_type("text/plain"),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE, "template")
            .with_title("Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
    ]
}

/// The `{id}` of a URI matching the template.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Whether `uri` names something [`read`] can serve.
pub fn exists(uri: &str) -> bool {
    list().iter().any(|r| r.uri == uri) || template_id(uri).is_some()
}

/// How long a read stays fresh, in milliseconds: the watched resource changes every
/// 3 s, the rest never.
pub fn ttl_ms(uri: &str) -> u64 {
    if uri == WATCHED_URI { 3_000 } else { 300_000 }
}

/// Reads `uri`; an unknown one is resource-not-found with the URI in `data` (rmcp
/// turns the code into -32602 for 2026-07-28 clients, as SEP-2164 asks).
pub fn read(uri: &str, watched_revision: u64) -> Result<ReadResourceResult, ErrorData> {
    let contents = match uri {
        STATIC_TEXT_URI => {
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain")
        }
        STATIC_BINARY_URI => {
            ResourceContents::blob(TEST_IMAGE_BASE64, uri).with_mime_type("image/png")
        }
        WATCHED_URI => ResourceContents::text(
            format!("Watched resource content, revision {watched_revision}"),
            uri,
        )
        .with_mime_type("text/plain"),
        _ => match template_id(uri) {
            Some(id) => ResourceContents::text(
                json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                    .to_string(),
                uri,
            )
            .with_mime_type("application/json"),
            None => {
                return Err(ErrorData::resource_not_found(
                    format!(
                        "no resource at {uri}; resources/list and resources/templates/list show what exists"
                    ),
                    Some(json!({"uri": uri})),
                ));
            }
        },
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_reads_echo_the_id() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/1/2/data"), None);
        assert!(exists(WATCHED_URI));
        assert!(!exists(
            "test://nonexistent-resource-for-conformance-testing"
        ));
    }
}
