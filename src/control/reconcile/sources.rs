//! Source statuses: the resolved sink, and the adapter conditions.

use knit_crds::api::duck::{
    CloudEventAttributes, Destination, SecretValueFromSource, SourceStatus,
};
use knit_crds::{Kind, Object, ObjectKey};

use super::World;
use super::conditions::Conditions;

fn sink(
    world: &World<'_>,
    sink: Option<&Destination>,
    ns: &str,
    c: &mut Conditions,
) -> Option<String> {
    match sink.map(|s| world.resolve(s, ns)) {
        Some(Ok(u)) => {
            c.ok("SinkProvided");
            Some(u)
        }
        Some(Err(e)) => {
            c.fail("SinkProvided", "NotFound", e);
            None
        }
        None => {
            c.fail("SinkProvided", "NotFound", "spec.sink is not set");
            None
        }
    }
}

fn adapter_missing(c: &mut Conditions, condition: &str, kind: Kind) {
    c.fail(
        condition,
        "AdapterNotAvailable",
        format!("{kind} adapters are not part of this Knit build yet; the resource is stored and its sink resolved"),
    );
}

fn secret_ok(world: &World<'_>, s: Option<&SecretValueFromSource>, ns: &str) -> Result<(), String> {
    let Some(k) = s.and_then(|s| s.secret_key_ref.as_ref()) else {
        return Err("no secretKeyRef".into());
    };
    let name = k.name.clone().unwrap_or_default();
    let key = k.key.clone().unwrap_or_default();
    match world.objects.get(&ObjectKey::new(Kind::Secret, ns, &name)) {
        Some(Object::Secret(sec)) => {
            let has = sec.data.as_ref().is_some_and(|d| d.contains_key(&key))
                || sec
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&key));
            if has {
                Ok(())
            } else {
                Err(format!("Secret {ns}/{name} has no key {key:?}"))
            }
        }
        _ => Err(format!("Secret {ns}/{name} does not exist")),
    }
}

pub(crate) fn sources(world: &mut World<'_>) {
    let kinds = [
        Kind::PingSource,
        Kind::ApiServerSource,
        Kind::SinkBinding,
        Kind::ContainerSource,
        Kind::GitHubSource,
        Kind::CloudPubSubSource,
    ];
    for kind in kinds {
        for key in world.keys_of(kind) {
            let Some(mut o) = world.objects.get(&key).cloned() else {
                continue;
            };
            let ns = key.namespace.clone();
            let mut c = Conditions::new();
            let mut st = SourceStatus::default();
            match &mut o {
                Object::PingSource(p) => {
                    st.sink_uri = sink(world, p.spec.sink.as_ref(), &ns, &mut c);
                    st.ce_attributes = vec![CloudEventAttributes {
                        type_: Some("dev.knative.sources.ping".into()),
                        source: Some(format!("/apis/v1/namespaces/{ns}/pingsources/{}", key.name)),
                    }];
                    adapter_missing(&mut c, "Deployed", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "Deployed"]);
                    p.status = Some(st);
                }
                Object::ApiServerSource(a) => {
                    st.sink_uri = sink(world, a.spec.sink.as_ref(), &ns, &mut c);
                    c.fail(
                        "Deployed",
                        "NoKubernetesAPI",
                        "ApiServerSource watches a Kubernetes API server; it runs in cluster mode",
                    );
                    c.unknown("SufficientPermissions", "NoKubernetesAPI", "");
                    let mut status = a.status.clone().unwrap_or_default();
                    st.status.conditions =
                        c.roll_up(&["SinkProvided", "Deployed", "SufficientPermissions"]);
                    status.source = st;
                    status.namespaces = vec![ns.clone()];
                    a.status = Some(status);
                }
                Object::SinkBinding(b) => {
                    st.sink_uri = sink(world, b.spec.sink.as_ref(), &ns, &mut c);
                    c.fail(
                        "BindingAvailable",
                        "SubjectNotSupported",
                        "SinkBinding subjects are Kubernetes workloads; they are bound in cluster mode",
                    );
                    st.status.conditions = c.roll_up(&["SinkProvided", "BindingAvailable"]);
                    b.status = Some(st);
                }
                Object::ContainerSource(cs) => {
                    st.sink_uri = sink(world, cs.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "ReceiveAdapterReady", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "ReceiveAdapterReady"]);
                    cs.status = Some(st);
                }
                Object::GitHubSource(g) => {
                    match secret_ok(world, g.spec.access_token.as_ref(), &ns)
                        .and_then(|_| secret_ok(world, g.spec.secret_token.as_ref(), &ns))
                    {
                        Ok(()) => {
                            c.ok("SecretsProvided");
                        }
                        Err(e) => {
                            c.fail("SecretsProvided", "SecretNotFound", e);
                        }
                    }
                    st.sink_uri = sink(world, g.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "WebhookConfigured", kind);
                    let mut status = g.status.clone().unwrap_or_default();
                    st.status.conditions =
                        c.roll_up(&["SecretsProvided", "SinkProvided", "WebhookConfigured"]);
                    status.source = st;
                    g.status = Some(status);
                }
                Object::CloudPubSubSource(p) => {
                    st.sink_uri = sink(world, p.spec.sink.as_ref(), &ns, &mut c);
                    adapter_missing(&mut c, "PullSubscriptionReady", kind);
                    st.status.conditions = c.roll_up(&["SinkProvided", "PullSubscriptionReady"]);
                    p.status = Some(st);
                }
                _ => continue,
            }
            world.objects.insert(key, o);
        }
    }
}
