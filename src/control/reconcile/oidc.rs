//! Sender identity and EventPolicy (Knative's `authentication-oidc` and
//! `default-authorization-mode`, security.md §2–3): the flags from `config-features`, the
//! audience of every ingress addressable, EventPolicy status, which Ready policies apply to a
//! target (`status.policies`), and the identities and audiences the Contract carries.
//!
//! Subjects are Knative's ServiceAccount names: `system:serviceaccount:<ns>:<name>-oidc-<group>-<kind>`
//! (e.g. `...:my-trigger-oidc-eventing.knative.dev-trigger`), not hashed when long.

use std::collections::BTreeMap;

use knit_crds::api::duck::{Condition, Destination};
use knit_crds::api::eventing::{AppliedEventPolicy, EventPolicy, EventPolicyStatus};
use knit_crds::contract::{AuthorizationMode, EgressAuth, IngressAuth, PolicyRule};
use knit_crds::{Kind, Object, ObjectKey};

use super::World;
use super::conditions::Conditions;
use crate::control::feature_gate;

const POLICY_API_VERSION: &str = "eventing.knative.dev/v1alpha1";

/// `authentication-oidc` and `default-authorization-mode` of `knative-eventing/config-features`:
/// `Some(mode)` when OIDC is enabled. A mode that is none of the three is `deny-all` (fail
/// closed; admission refuses it anyway).
pub(super) fn settings(world: &World<'_>) -> Option<AuthorizationMode> {
    let features = world.objects.get(&feature_gate::features_key());
    if !feature_gate::oidc_enabled(features) {
        return None;
    }
    let Some(Object::ConfigMap(cm)) = features else {
        return None;
    };
    let data = cm.data.as_ref()?;
    Some(match data.get("default-authorization-mode") {
        Some(v) => AuthorizationMode::parse(v).unwrap_or(AuthorizationMode::DenyAll),
        None => AuthorizationMode::default(),
    })
}

/// The kinds whose ingress checks tokens.
fn is_target(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Broker
            | Kind::InMemoryChannel
            | Kind::KafkaChannel
            | Kind::NatsJetStreamChannel
            | Kind::KafkaSink
            | Kind::GitHubSource
    )
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// The subject of a sending object.
pub(crate) fn subject_of(key: &ObjectKey) -> String {
    knit_oidc::sender_subject(
        &key.namespace,
        &key.name,
        &key.kind.group(),
        key.kind.name(),
    )
}

impl World<'_> {
    /// The audience of an ingress addressable.
    pub(crate) fn audience_of(&self, key: &ObjectKey) -> Option<String> {
        self.oidc?;
        is_target(key.kind).then(|| {
            knit_oidc::audience(
                &key.kind.group(),
                key.kind.name(),
                &key.namespace,
                &key.name,
            )
        })
    }

    /// The audience of a URL on Knit's ingress (plain or HTTPS): its Broker's, channel's or
    /// KafkaSink's; `None` for anything else or when OIDC is off.
    pub(crate) fn audience_for_url(&self, url: &str) -> Option<String> {
        self.oidc?;
        let mut bases = std::iter::once(self.env.ingress_url.as_str())
            .chain(self.env.tls.as_ref().map(|t| t.ingress_url.as_str()));
        let path = bases
            .find_map(|b| url.strip_prefix(b.trim_end_matches('/')))
            .filter(|p| p.starts_with('/'))?;
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let kinds: &[Kind] = match segments.as_slice() {
            [_, _] => &[Kind::Broker],
            ["sinks", _, _] => &[Kind::KafkaSink],
            ["github", _, _] => &[Kind::GitHubSource],
            ["channels", _, _] => &[
                Kind::InMemoryChannel,
                Kind::KafkaChannel,
                Kind::NatsJetStreamChannel,
            ],
            _ => return None,
        };
        let (ns, name) = (segments[segments.len() - 2], segments[segments.len() - 1]);
        let key = kinds
            .iter()
            .map(|k| ObjectKey::new(*k, ns, name))
            .find(|k| self.objects.contains_key(k))?;
        self.audience_of(&key)
    }

    /// The audience tokens to `url` are for: the Destination's own, else the ingress's.
    pub(crate) fn audience_for(
        &self,
        dest: Option<&Destination>,
        url: Option<&str>,
    ) -> Option<String> {
        self.oidc?;
        dest.and_then(|d| d.audience.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| url.and_then(|u| self.audience_for_url(u)))
    }

    /// What an egress of `sender` sends with (OIDC on).
    pub(crate) fn egress_auth(
        &self,
        sender: &ObjectKey,
        subscriber: (Option<&Destination>, Option<&str>),
        reply: (Option<&Destination>, Option<&str>),
        dead_letter_sink: (Option<&Destination>, Option<&str>),
    ) -> Option<EgressAuth> {
        self.oidc?;
        Some(EgressAuth {
            subject: subject_of(sender),
            subscriber_audience: self.audience_for(subscriber.0, subscriber.1),
            reply_audience: self.audience_for(reply.0, reply.1),
            dead_letter_sink_audience: self.audience_for(dead_letter_sink.0, dead_letter_sink.1),
        })
    }

    /// Who may send to the ingress of `key` (OIDC on).
    pub(crate) fn ingress_auth(&self, key: &ObjectKey) -> Option<IngressAuth> {
        let default_mode = self.oidc?;
        let audience = self.audience_of(key)?;
        let policies = applying(self, key)
            .into_iter()
            .filter(|(_, p)| policy_ready(p))
            .map(|(name, p)| PolicyRule {
                name,
                subjects: p
                    .status
                    .as_ref()
                    .map(|s| s.from.clone())
                    .unwrap_or_default(),
                filters: p.spec.filters.clone(),
            })
            .collect();
        Some(IngressAuth {
            audience,
            policies,
            default_mode,
        })
    }
}

fn policy_ready(p: &EventPolicy) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Set every EventPolicy's status, then every target's `status.policies` and
/// `EventPoliciesReady` (OIDC on).
pub(super) fn policies(world: &mut World<'_>) {
    for key in world.keys_of(Kind::EventPolicy) {
        let Some(Object::EventPolicy(mut p)) = world.objects.get(&key).cloned() else {
            continue;
        };
        p.status = Some(policy_status(world, &key, &p));
        world.objects.insert(key, Object::EventPolicy(p));
    }
    if world.oidc.is_none() {
        return;
    }
    let targets: Vec<ObjectKey> = world
        .objects
        .keys()
        .filter(|k| is_target(k.kind) || matches!(k.kind, Kind::Sequence | Kind::Parallel))
        .cloned()
        .collect();
    for key in targets {
        let applying = applying(world, &key);
        let not_ready: Vec<&str> = applying
            .iter()
            .filter(|(_, p)| !policy_ready(p))
            .map(|(n, _)| n.as_str())
            .collect();
        let mode = world.oidc.unwrap_or_default();
        let condition = if !not_ready.is_empty() {
            (
                "False",
                "EventPoliciesNotReady",
                format!("event policies {} are not ready", not_ready.join(", ")),
            )
        } else if applying.is_empty() {
            (
                "True",
                "DefaultAuthorizationMode",
                format!("Default authz mode is {:?}", mode.shown()),
            )
        } else {
            ("True", "", String::new())
        };
        let listed: Vec<AppliedEventPolicy> = applying
            .iter()
            .filter(|(_, p)| policy_ready(p))
            .map(|(name, _)| AppliedEventPolicy {
                api_version: POLICY_API_VERSION.into(),
                name: name.clone(),
            })
            .collect();
        if let Some(o) = world.objects.get_mut(&key) {
            set_target_status(o, listed, condition);
        }
    }
}

/// `status.policies` and the `EventPoliciesReady` condition of a target; a False one makes
/// it not Ready, as Knative's Broker.
fn set_target_status(
    o: &mut Object,
    listed: Vec<AppliedEventPolicy>,
    (status, reason, message): (&str, &str, String),
) {
    // The policies and the conditions of a target's status (`None` before it has one).
    macro_rules! parts {
        ($x:expr) => {
            match $x.status.as_mut() {
                Some(s) => (&mut s.policies, &mut s.status),
                None => return,
            }
        };
    }
    let (policies, st) = match o {
        Object::Broker(x) => parts!(x),
        Object::KafkaSink(x) => parts!(x),
        Object::InMemoryChannel(x) => parts!(x),
        Object::KafkaChannel(x) => parts!(x),
        Object::NatsJetStreamChannel(x) => parts!(x),
        Object::Sequence(x) => parts!(x),
        Object::Parallel(x) => parts!(x),
        Object::GitHubSource(x) => match x.status.as_mut() {
            Some(s) => (&mut s.policies, &mut s.source.status),
            None => return,
        },
        _ => return,
    };
    *policies = listed;
    st.conditions.retain(|c| c.type_ != "EventPoliciesReady");
    st.conditions.push(Condition {
        type_: "EventPoliciesReady".into(),
        status: status.into(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then_some(message.clone()),
        ..Default::default()
    });
    st.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    if status != "True"
        && let Some(ready) = st.conditions.iter_mut().find(|c| c.type_ == "Ready")
    {
        ready.status = "False".into();
        ready.reason = Some("EventPoliciesNotReady".into());
        ready.message = Some(message);
    }
}

/// An EventPolicy's status: `AuthenticationEnabled` (OIDC on), `SubjectsResolved` (every
/// `from.ref` names an object that exists), `Ready`; `status.from` the resolved subjects.
fn policy_status(world: &World<'_>, key: &ObjectKey, p: &EventPolicy) -> EventPolicyStatus {
    let mut c = Conditions::new();
    let mut from = Vec::new();
    if world.oidc.is_none() {
        c.fail(
            "AuthenticationEnabled",
            "OIDCAuthenticationDisabled",
            "authentication-oidc is not enabled in config-features",
        );
    } else {
        c.ok("AuthenticationEnabled");
        let mut missing = Vec::new();
        for f in &p.spec.from {
            if let Some(sub) = f.sub.as_ref().filter(|s| !s.is_empty()) {
                from.push(sub.clone());
            } else if let Some(r) = &f.reference {
                let ns = r.namespace.as_deref().unwrap_or(&key.namespace);
                let kind = Kind::ALL.iter().copied().find(|k| {
                    k.name().eq_ignore_ascii_case(&r.kind)
                        && k.group().eq_ignore_ascii_case(group_of(&r.api_version))
                });
                match kind.map(|k| ObjectKey::new(k, ns, &r.name)) {
                    Some(sender) if world.objects.contains_key(&sender) => {
                        from.push(subject_of(&sender))
                    }
                    _ => missing.push(format!("{} {ns}/{}", r.kind, r.name)),
                }
            }
        }
        if missing.is_empty() {
            c.ok("SubjectsResolved");
        } else {
            c.fail(
                "SubjectsResolved",
                "SubjectsNotResolved",
                format!("cannot resolve the subjects of {}", missing.join(", ")),
            );
        }
    }
    let mut status = EventPolicyStatus::default();
    status.status.observed_generation = p.metadata.generation;
    status.status.conditions = c.roll_up(&["AuthenticationEnabled", "SubjectsResolved"]);
    status.from = from;
    status
}

/// The EventPolicies that apply to `target`, by name (sorted): in its namespace, with an
/// empty `to`, a `to.ref` naming it (group, kind and name, case-insensitively) or a
/// `to.selector` of its group and kind matching its labels. A policy on a Channel applies to
/// its backing channel (same name), as Knative mirrors it.
pub(super) fn applying<'w>(
    world: &'w World<'_>,
    target: &ObjectKey,
) -> Vec<(String, &'w EventPolicy)> {
    let Some(o) = world.objects.get(target) else {
        return Vec::new();
    };
    let labels = o.meta().labels.clone().unwrap_or_default();
    let names = [(target.kind.group(), target.kind.name())];
    let channel = target
        .kind
        .is_channel()
        .then(|| (Kind::Channel.group(), Kind::Channel.name()));
    let is = |api_version: &str, kind: &str| {
        names.iter().chain(channel.iter()).any(|(g, k)| {
            g.eq_ignore_ascii_case(group_of(api_version)) && k.eq_ignore_ascii_case(kind)
        })
    };
    let mut out: BTreeMap<String, &EventPolicy> = BTreeMap::new();
    for (key, p) in &world.objects {
        let (Kind::EventPolicy, Object::EventPolicy(p)) = (key.kind, p) else {
            continue;
        };
        if key.namespace != target.namespace {
            continue;
        }
        let applies = p.spec.to.is_empty()
            || p.spec.to.iter().any(|to| {
                to.reference.as_ref().is_some_and(|r| {
                    is(&r.api_version, &r.kind) && r.name.eq_ignore_ascii_case(&target.name)
                }) || to
                    .selector
                    .as_ref()
                    .is_some_and(|s| is(&s.api_version, &s.kind) && selects(s, &labels))
            });
        if applies {
            out.insert(key.name.clone(), p);
        }
    }
    out.into_iter().collect()
}

fn selects(
    s: &knit_crds::api::eventing::EventPolicySelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && s.match_expressions.iter().all(|e| {
            let v = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => v.is_some_and(|v| e.values.contains(v)),
                "NotIn" => v.is_none_or(|v| !e.values.contains(v)),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                _ => false,
            }
        })
}
