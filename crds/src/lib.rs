//! knit-crds: the API types of every kind Knit runs (serde + schemars + `kube::CustomResource`),
//! Knative's defaults, admission (structural schema checks and Knative's validation rules, with
//! field paths), the parsers of the ConfigMaps Knit reads, the generated CRD manifests, and the
//! Contract handed to the data plane.
//!
//! This crate does no I/O: it turns text and values into types, verdicts and schemas. Reading
//! files, serving HTTP and running anything belong to the crates that depend on it.

pub mod admission;
pub mod api;
pub mod configmap;
pub mod contract;
pub mod crd;
pub mod duration;
mod error;
pub mod expand;
pub mod names;
mod object;
pub mod yaml;

pub use error::{Error, Result};
pub use object::{Kind, Object, ObjectKey};
