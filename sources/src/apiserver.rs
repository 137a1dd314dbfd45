//! Placeholder: replaced by the adapter.

use std::sync::Arc;

use knit_crds::contract::Source;

use crate::runtime::{Ctx, StopSignal};

/// Run the adapter until told to stop.
pub(crate) async fn run(ctx: Arc<Ctx>, source: Arc<Source>, mut stop: StopSignal) {
    ctx.report
        .not_ready(&source.uid, "AdapterNotAvailable", "not built yet");
    stop.stopped().await;
}
