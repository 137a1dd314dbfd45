//! The serving data plane (placeholder: revisions, proxy, gateway and activator land here).
