//! A journey as the admin API shows it (`GET /api/v1/events/...`, read by `knit trace`,
//! `knit get events` and the flow map): accepted, then per egress matched or not (with the
//! deciding clause, explained only now), each attempt, retries, the reply's id, the outcome.

use serde::{Deserialize, Serialize};

use super::Fate;
use super::journal::{Entry, Step, Trail};
use super::seam::{Leg, Mode, Origin};

/// Which journeys `recent` lists.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// Ingress namespace.
    pub namespace: Option<&'a str>,
    /// Ingress name.
    pub name: Option<&'a str>,
    /// Ingress kind (`Broker`, `Channel`).
    pub kind: Option<&'a str>,
    /// Event type.
    pub ty: Option<&'a str>,
    /// Only journeys where something failed.
    pub failed: bool,
    /// Most journeys returned.
    pub limit: usize,
}

/// One event's journey.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journey {
    /// Event id.
    pub id: String,
    /// Event source.
    pub source: String,
    /// Event type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Where it entered.
    pub ingress: Origin,
    /// At the ingress (`null`: not seen there, or forgotten).
    pub accepted: Option<AcceptedView>,
    /// Per Trigger or Subscription.
    pub egresses: Vec<EgressJourney>,
    /// Its acceptance at the Broker or channel is not known: forgotten, or it happened in
    /// another process (events of sources have none and are never too old).
    pub too_old: bool,
}

/// The ingress step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedView {
    /// When (RFC 3339).
    pub at: String,
    /// Bytes of the request body.
    pub size: usize,
    /// `binary`, `structured` or `batch`.
    pub mode: Mode,
    /// The log refused it after all, with this status (429, 503, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u16>,
}

/// One attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// When it started (RFC 3339).
    pub at: String,
    /// The URL.
    pub destination: String,
    /// `subscriber`, `reply` or `deadLetter`.
    pub target: Leg,
    /// The answer's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Request to response, milliseconds.
    pub latency_ms: f64,
    /// The wait before the next attempt, when one followed this failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// A reply's new event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyView {
    /// Its id (followable with another `knit trace`).
    pub id: String,
}

/// The journey at one egress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressJourney {
    /// Name of the Trigger or Subscription.
    pub name: String,
    /// `Trigger`, `Subscription`, or a source kind.
    pub kind: String,
    /// Whether its filter took the event.
    pub matched: bool,
    /// For a non-match, the filter clause that said no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<String>,
    /// Why, in words (a non-match, or a drop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attempts in order.
    pub attempts: Vec<AttemptView>,
    /// Attempts not kept (a long retry).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u32,
    /// Retries at the subscriber.
    pub retries: u32,
    /// The reply's new event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyView>,
    /// `delivered`, `deadLettered`, `dropped`, `filtered`, `inFlight`.
    pub outcome: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn split(reference: &str) -> (String, String) {
    let kind = reference.split('/').next().unwrap_or_default();
    let name = reference.rsplit('/').next().unwrap_or_default();
    (kind.to_string(), name.to_string())
}

fn outcome(fate: Option<&Fate>) -> &'static str {
    match fate {
        Some(Fate::Delivered { .. }) => "delivered",
        Some(Fate::Filtered) => "filtered",
        Some(Fate::DeadLettered { .. }) => "deadLettered",
        Some(Fate::Dropped { .. }) => "dropped",
        Some(Fate::Deferred { .. }) | None => "inFlight",
    }
}

fn attempts(t: &Trail) -> (Vec<AttemptView>, u32) {
    let mut out: Vec<AttemptView> = Vec::new();
    let mut retries = 0;
    for s in &t.steps {
        match s {
            Step::Attempt {
                at_ms,
                leg,
                url,
                status,
                error,
                latency,
            } => out.push(AttemptView {
                at: rfc3339(*at_ms),
                destination: url.to_string(),
                target: *leg,
                status: *status,
                error: error.clone(),
                latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
                retry_in_ms: None,
            }),
            Step::Retry { wait } => {
                retries += 1;
                if let Some(last) = out.last_mut() {
                    last.retry_in_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                }
            }
        }
    }
    let by_fate = match &t.fate {
        Some(
            Fate::Delivered { attempts, .. }
            | Fate::DeadLettered { attempts, .. }
            | Fate::Dropped { attempts, .. }
            | Fate::Deferred { attempts },
        ) => attempts.saturating_sub(1),
        _ => 0,
    };
    (out, retries.max(by_fate))
}

fn from_trail(t: &Trail) -> EgressJourney {
    let (kind, name) = split(&t.egress);
    let (attempts, retries) = attempts(t);
    EgressJourney {
        name,
        kind,
        matched: !matches!(t.fate, Some(Fate::Filtered)),
        clause: None,
        reason: match &t.fate {
            Some(Fate::Dropped { reason, .. }) => Some(reason.clone()),
            _ => None,
        },
        attempts,
        omitted: t.omitted,
        retries,
        reply: t.reply.clone().map(|id| ReplyView { id }),
        outcome: outcome(t.fate.as_ref()).to_string(),
    }
}

/// The journey of `e`; filters of egresses that did not take the event are explained now.
pub(crate) fn render(e: &Entry) -> Journey {
    let refused = e.accepted.as_ref().and_then(|a| a.refused).is_some();
    let mut egresses = Vec::new();
    if !refused {
        let view = e.view.as_deref().map(|v| v.egresses.as_slice());
        for v in view.unwrap_or_default() {
            let trail = e.trails.iter().find(|t| t.egress == v.reference);
            let filtered = trail.is_none_or(|t| matches!(t.fate, Some(Fate::Filtered)));
            let verdict = match &v.filter {
                Some(f) if filtered => Some(f.explain(&e.event)),
                _ => None,
            };
            let mut j = match trail {
                Some(t) => from_trail(t),
                None => {
                    let (kind, name) = split(&v.reference);
                    EgressJourney {
                        name,
                        kind,
                        matched: true,
                        clause: None,
                        reason: None,
                        attempts: Vec::new(),
                        omitted: 0,
                        retries: 0,
                        reply: None,
                        outcome: "inFlight".into(),
                    }
                }
            };
            if let Some(verdict) = verdict.filter(|v| !v.matched) {
                j.matched = false;
                j.clause = Some(verdict.clause);
                j.reason = Some(verdict.reason);
                j.outcome = "filtered".into();
            }
            egresses.push(j);
        }
        let known = |t: &&Trail| {
            view.unwrap_or_default()
                .iter()
                .all(|v| v.reference != t.egress)
        };
        egresses.extend(e.trails.iter().filter(known).map(from_trail));
    }
    Journey {
        id: e.event.id.clone(),
        source: e.event.source.clone(),
        ty: e.event.ty.clone(),
        ingress: (*e.origin).clone(),
        accepted: e.accepted.as_ref().map(|a| AcceptedView {
            at: rfc3339(a.at_ms),
            size: a.size,
            mode: a.mode,
            refused: a.refused,
        }),
        egresses,
        // Sources (and KafkaSources) send without an ingress: nothing was forgotten.
        too_old: e.accepted.is_none()
            && matches!(e.origin.kind.as_str(), "Broker" | "Channel" | "KafkaSink"),
    }
}

/// Whether something failed on the way: refused, dead-lettered, dropped, or a failed attempt.
pub(crate) fn failed(e: &Entry) -> bool {
    e.accepted.as_ref().is_some_and(|a| a.refused.is_some())
        || e.trails.iter().any(|t| {
            matches!(
                t.fate,
                Some(Fate::DeadLettered { .. } | Fate::Dropped { .. })
            ) || t.steps.iter().any(|s| {
                matches!(s, Step::Attempt { status, error, .. }
                    if error.is_some() || status.is_some_and(|c| !(200..300).contains(&c)))
            })
        })
}

/// Whether `e` is one `q` asks for.
pub(crate) fn selected(e: &Entry, q: &Query<'_>) -> bool {
    q.namespace.is_none_or(|n| e.origin.namespace == n)
        && q.name.is_none_or(|n| e.origin.name == n)
        && q.kind.is_none_or(|k| e.origin.kind.eq_ignore_ascii_case(k))
        && q.ty.is_none_or(|t| e.event.ty == t)
        && (!q.failed || failed(e))
}
