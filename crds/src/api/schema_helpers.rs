//! Hand-written schemas for fields whose shape is recursive or free-form; structural CRD schemas
//! cannot recurse, so these fields keep unknown fields and are checked by admission instead.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields are kept as written.
pub(crate) fn preserve_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of objects whose fields are kept as written.
pub(crate) fn preserve_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}
