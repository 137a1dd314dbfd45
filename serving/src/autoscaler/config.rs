//! The `config-autoscaler` ConfigMap (namespace `knative-serving`, reference §1.8). Its parser
//! and Knative's validation live in `knit_crds::configmap::autoscaler`, the one parser
//! admission and the KPA share; this module re-exports it.

pub(crate) use knit_crds::configmap::autoscaler::parse_float;
pub use knit_crds::configmap::autoscaler::{AutoscalerConfig, CONFIG_KEYS};
