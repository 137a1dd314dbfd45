//! Rust types for every kind Knit runs, with Knative's field names.

pub mod duck;
pub mod eventing;
pub mod flows;
pub mod messaging;
mod schema_helpers;
pub mod serving;
pub mod sources;

pub use k8s_openapi::api::core::v1::{ConfigMap, Secret};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
