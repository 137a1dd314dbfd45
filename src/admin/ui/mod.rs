//! The live flow map: a page at `GET /ui` drawing sources → brokers/channels →
//! triggers/subscriptions → sinks as a graph, and `GET /api/v1/stream`, the Server-Sent Events
//! feed it updates from.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/ui` | the page (HTML, CSS and ES modules embedded in the binary; no build step) |
//! | GET | `/ui/{file}` | its scripts and style sheet |
//! | GET | `/api/v1/stream` | `text/event-stream`: one `snapshot` event a second |
//!
//! A snapshot is `{"at": UNIX-MS, "generation": N, "contract": G, "totals": {...},
//! "egresses": {"Kind/ns/name": {delivered, dropped, deadLettered, retries, filtered, shed,
//! ...}}}`: the fate counters of `/api/v1/stats` as they are now. `generation` counts, per stream,
//! the changes of the objects the admin API serves (the page refetches them when it moves and
//! when it (re)connects); `contract` is the Contract's generation. The page turns successive
//! snapshots into rates itself.
//!
//! The page's files are public (they hold no data; with `--admin-token` the page asks for the
//! token and sends it as a bearer header); the stream is behind the admin API's bearer token like
//! every `/api/v1` path. Bounded: at most [`MAX_STREAMS`] streams at once, each produces one
//! snapshot a second only when the client reads (nothing queues per client).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AdminState, error};
use crate::control::Snapshot;

/// Streams served at once; more are refused with 503.
pub(crate) const MAX_STREAMS: usize = 64;

/// How often a stream sends a snapshot.
const PERIOD: Duration = Duration::from_secs(1);

static STREAMS: AtomicUsize = AtomicUsize::new(0);

/// The page's files: name, content type, text.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
    (
        "graph.js",
        "text/javascript; charset=utf-8",
        include_str!("graph.js"),
    ),
    (
        "panel.js",
        "text/javascript; charset=utf-8",
        include_str!("panel.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("style.css"),
    ),
];

const INDEX: &str = include_str!("index.html");

/// The stream, behind the admin API's authentication.
pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/api/v1/stream", get(stream))
}

/// The page's static files, public (merged after the authentication layer).
pub(crate) fn pages() -> Router<AdminState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

fn static_response(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn index() -> Response {
    static_response("text/html; charset=utf-8", INDEX)
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => static_response(ct, body),
        None => error(StatusCode::NOT_FOUND, format!("no file {name:?} in /ui")),
    }
}

/// Holds one of the [`MAX_STREAMS`] slots while a stream lives.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        STREAMS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one stream remembers between ticks: the last snapshot it saw and how often the
/// objects changed.
struct Tick {
    state: AdminState,
    interval: tokio::time::Interval,
    last: Arc<Snapshot>,
    generation: u64,
    _slot: Slot,
}

impl Tick {
    async fn next(mut self) -> Option<(Result<Event, std::convert::Infallible>, Tick)> {
        self.interval.tick().await;
        let now = self.state.control.snapshot();
        if !Arc::ptr_eq(&now, &self.last) {
            if now.version != self.last.version {
                self.generation += 1;
            }
            self.last = now;
        }
        let at = jiff::Timestamp::now().as_millisecond();
        let body = json!({
            "at": at,
            "generation": self.generation,
            "contract": self.last.contract.generation,
            "totals": self.state.stats.totals(),
            "egresses": self.state.stats.egresses(),
        });
        let event = Event::default().event("snapshot").data(body.to_string());
        Some((Ok(event), self))
    }
}

async fn stream(State(state): State<AdminState>) -> Response {
    let Some(slot) = Slot::take() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} streams are open already; close one"),
        );
    };
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let last = state.control.snapshot();
    let tick = Tick {
        state,
        interval,
        last,
        generation: 1,
        _slot: slot,
    };
    let events = futures::stream::unfold(tick, Tick::next);
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_imports_is_served() {
        let texts = std::iter::once(INDEX).chain(FILES.iter().map(|(_, _, t)| *t));
        for text in texts {
            for quote in ["'./", "\"./", "\"/ui/"] {
                for part in text.split(quote).skip(1) {
                    let name = part
                        .split(['\'', '"'])
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("ui/");
                    assert!(
                        FILES.iter().any(|(n, _, _)| *n == name),
                        "{name:?} is referenced but not served"
                    );
                }
            }
        }
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let held: Vec<Slot> = std::iter::from_fn(Slot::take)
            .take(MAX_STREAMS + 1)
            .collect();
        assert!(held.len() <= MAX_STREAMS);
        drop(held);
        assert!(Slot::take().is_some());
    }
}
