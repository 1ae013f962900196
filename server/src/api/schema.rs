//! The JSON Schema document served at `GET /v1/schema` and committed at
//! `clients/schema/opensports.schema.json`: the wire types of `opensports_proto::schema`, and
//! the server's own request bodies that clients send (`NewDevice`, `POST /v1/devices`),
//! generated from the types the server parses them into.

use schemars::generate::SchemaSettings;

/// The document, pretty-printed with sorted keys, built once.
pub fn schema_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let mut doc = opensports_proto::schema::document();
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        generator.subschema_for::<crate::push::NewDevice>();
        if let Some(all) = doc["$defs"].as_object_mut() {
            all.extend(generator.take_definitions(true));
        }
        doc.sort_all_objects();
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    })
}

#[cfg(test)]
mod tests {
    /// The copy the JS and Python clients build from must be what the types say now.
    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/schema/opensports.schema.json");
        let now = super::schema_text();
        if std::env::var_os("OPENSPORTS_BLESS").is_some() {
            std::fs::write(path, now).expect("write the schema");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == now,
            "clients/schema/opensports.schema.json is stale: run `cargo run -q -- schema > clients/schema/opensports.schema.json` \
             (or this test with OPENSPORTS_BLESS=1), then `npm run gen` in clients/js"
        );
        let doc: serde_json::Value = serde_json::from_str(now).unwrap();
        let device = &doc["$defs"]["NewDevice"];
        assert_eq!(device["additionalProperties"], false, "unknown fields are refused: {device}");
        assert!(device["required"].as_array().unwrap().iter().any(|r| r == "provider"));
    }
}
