//! Addresses by transport encryption mode, as Knative's table has them (security.md §4.1).

use knit_crds::contract::{Report, TransportEncryption};
use knit_crds::{Kind, Object, ObjectKey};
use serde_json::{Value, json};

use super::TlsEnv;
use crate::control::reconcile::{Env, Output, PreviousConditions, reconcile};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn load(yaml: &str) -> Vec<Object> {
    crate::control::testing::stored(yaml, 1)
}

fn env(tls: bool) -> Env {
    Env {
        ingress_url: "http://127.0.0.1:8080".into(),
        gateway_url: "http://127.0.0.1:8081".into(),
        kafka: None,
        nats: None,
        tls: tls.then(|| TlsEnv {
            ingress_url: "https://127.0.0.1:8443".into(),
            gateway_url: "https://127.0.0.1:8444".into(),
            ca_certs: Some(CA.into()),
        }),
    }
}

fn run_objects(objects: &[Object], tls: bool) -> Output {
    reconcile(
        objects,
        &PreviousConditions::default(),
        &env(tls),
        &Report::default(),
        "2026-01-01T00:00:00Z",
    )
}

fn run(yaml: &str, tls: bool) -> Output {
    run_objects(&load(yaml), tls)
}

fn get(out: &Output, kind: Kind, name: &str) -> Value {
    out.objects
        .iter()
        .find(|o| o.key() == ObjectKey::new(kind, "default", name))
        .map(Object::to_json)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn features(mode: &str) -> String {
    format!(
        "
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-features, namespace: knative-eventing}}
data: {{transport-encryption: {mode}}}
---
"
    )
}

const OBJECTS: &str = "
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: shop}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: orders}
spec:
  broker: shop
  subscriber:
    uri: https://sink.example:9443/
    CACerts: |
      -----BEGIN CERTIFICATE-----
      MIIC
      -----END CERTIFICATE-----
  delivery:
    deadLetterSink:
      uri: https://dls.example/
      CACerts: dls-ca
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: pipe}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-shop}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: pipe}
  subscriber: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: shop}}
  reply: {uri: https://reply.example/, CACerts: reply-ca}
";

#[test]
fn a_certificate_without_a_mode_is_strict_https_only_with_the_ca() {
    let out = run(OBJECTS, true);
    let b = get(&out, Kind::Broker, "shop");
    let https =
        json!({"name": "https", "url": "https://127.0.0.1:8443/default/shop", "CACerts": CA});
    assert_eq!(b["status"]["address"], https);
    assert_eq!(b["status"]["addresses"], json!([https]));
    let c = get(&out, Kind::InMemoryChannel, "pipe");
    assert_eq!(
        c["status"]["address"]["url"],
        "https://127.0.0.1:8443/channels/default/pipe"
    );
    assert_eq!(
        out.contract.transport_encryption,
        TransportEncryption::Strict
    );
    // A reference to the Broker resolves to its https address; replies go there too.
    let s = get(&out, Kind::Subscription, "to-shop");
    assert_eq!(
        s["status"]["physicalSubscription"]["subscriberUri"],
        "https://127.0.0.1:8443/default/shop"
    );
    let ingress = out
        .contract
        .ingresses
        .iter()
        .find(|i| i.name == "shop")
        .expect("the broker's ingress");
    let t = &ingress.egresses[0];
    assert_eq!(
        t.reply.as_ref().map(|r| r.url.as_str()),
        Some("https://127.0.0.1:8443/default/shop")
    );
    // Destinations' own CACerts travel to the dispatcher.
    assert!(
        t.subscriber_ca_certs
            .as_deref()
            .is_some_and(|c| c.contains("MIIC"))
    );
    assert_eq!(t.dead_letter_sink_ca_certs.as_deref(), Some("dls-ca"));
    let pipe = out
        .contract
        .ingresses
        .iter()
        .find(|i| i.name == "pipe")
        .expect("the channel's ingress");
    assert_eq!(
        pipe.egresses[0]
            .reply
            .as_ref()
            .and_then(|r| r.ca_certs.as_deref()),
        Some("reply-ca")
    );
}

#[test]
fn permissive_keeps_http_as_the_address_and_lists_https_first() {
    let out = run(&format!("{}{OBJECTS}", features("Permissive")), true);
    let b = get(&out, Kind::Broker, "shop");
    let http = json!({"name": "http", "url": "http://127.0.0.1:8080/default/shop"});
    let https =
        json!({"name": "https", "url": "https://127.0.0.1:8443/default/shop", "CACerts": CA});
    assert_eq!(b["status"]["address"], http);
    assert_eq!(b["status"]["addresses"], json!([https, http]));
    assert_eq!(
        out.contract.transport_encryption,
        TransportEncryption::Permissive
    );
    // Resolution takes the first address, https, as Knative's resolver does.
    let s = get(&out, Kind::Subscription, "to-shop");
    assert_eq!(
        s["status"]["physicalSubscription"]["subscriberUri"],
        "https://127.0.0.1:8443/default/shop"
    );
}

#[test]
fn disabled_or_no_certificate_is_plain_http() {
    for (yaml, tls) in [
        (format!("{}{OBJECTS}", features("disabled")), true),
        (OBJECTS.to_string(), false),
    ] {
        let out = run(&yaml, tls);
        let b = get(&out, Kind::Broker, "shop");
        let http = json!({"name": "http", "url": "http://127.0.0.1:8080/default/shop"});
        assert_eq!(b["status"]["address"], http);
        assert_eq!(b["status"]["addresses"], json!([http]));
        assert_eq!(
            out.contract.transport_encryption,
            TransportEncryption::Disabled
        );
    }
}

#[test]
fn strict_without_a_certificate_addresses_nothing_and_says_why() {
    let out = run(&format!("{}{OBJECTS}", features("strict")), false);
    let b = get(&out, Kind::Broker, "shop");
    assert!(b["status"]["address"].is_null(), "{b}");
    let addressable = b["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Addressable"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(addressable["status"], "False");
    assert_eq!(addressable["reason"], "TLSNotConfigured");
    assert!(out.contract.ingresses.iter().all(|i| i.name != "shop"));
    assert_eq!(
        out.contract.transport_encryption,
        TransportEncryption::Strict
    );
}

#[test]
fn a_value_that_is_no_mode_is_taken_as_strict() {
    let mut objects = load(&format!("{}{OBJECTS}", features("permissive")));
    for o in &mut objects {
        if let Object::ConfigMap(cm) = o
            && let Some(d) = cm.data.as_mut()
        {
            d.insert("transport-encryption".into(), "sometimes".into());
        }
    }
    let out = run_objects(&objects, true);
    assert_eq!(
        out.contract.transport_encryption,
        TransportEncryption::Strict
    );
    let b = get(&out, Kind::Broker, "shop");
    assert_eq!(b["status"]["address"]["name"], "https");
}

#[test]
fn a_knative_service_gets_an_https_url_and_keeps_its_cluster_local_address() {
    let out = run(
        "
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers: [{image: x, command: [/bin/true]}]
",
        true,
    );
    let svc = get(&out, Kind::Service, "hello");
    assert_eq!(svc["status"]["url"], "https://hello.default.localhost:8444");
    assert_eq!(
        svc["status"]["address"]["url"],
        "http://hello.default.svc.cluster.local"
    );
}
