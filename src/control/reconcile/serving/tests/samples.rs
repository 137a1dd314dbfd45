//! The knative samples under `../shared/knative-samples/` reconcile with sensible statuses.

use knit_crds::contract::Report;
use knit_crds::{Kind, Object};

use super::{cond, load, report, run_with};

/// Give every Service's and Configuration's container a local stand-in for its image.
fn with_command(objects: &mut [Object]) {
    for o in objects {
        let template = match o {
            Object::Service(s) => s.spec.template.as_mut(),
            Object::Configuration(c) => c.spec.template.as_mut(),
            _ => None,
        };
        if let Some(c) = template
            .and_then(|t| t.spec.as_mut())
            .and_then(|s| s.pod.containers.first_mut())
        {
            c.command = Some(vec!["./app".into()]);
        }
    }
}

#[test]
fn knative_samples_reconcile_with_sensible_statuses() {
    let shared = std::env::var("KNIT_SHARED")
        .unwrap_or_else(|_| format!("{}/../shared", env!("CARGO_MANIFEST_DIR")));
    for file in [
        "serving__test__test_images__helloworld__helloworld.yaml",
        "docs__docs__versioned__serving__autoscaling__autoscale-go__service.yaml",
        "docs__docs__versioned__getting-started__first-traffic-split.md.block01.yaml",
        "docs__code-samples__serving__knative-routing-go__sample.yaml",
    ] {
        let Ok(text) = std::fs::read_to_string(format!("{shared}/knative-samples/{file}")) else {
            return; // the shared samples are not here
        };
        // As written (an image only): every revision says why it cannot run.
        let objects = load(&text, 1);
        let out = run_with(&objects, &[], &Report::default());
        let revisions: Vec<&Object> = out
            .objects
            .iter()
            .filter(|o| o.kind() == Kind::Revision)
            .collect();
        assert!(!revisions.is_empty(), "{file}");
        for r in &revisions {
            let v = r.to_json();
            assert_eq!(
                cond(&v, "Ready"),
                ("False".into(), "ImageNotRunnableLocally".into()),
                "{file}"
            );
        }
        assert!(out.contract.serving.revisions.is_empty(), "{file}");

        // With a command and a ready report, everything is Ready and routed.
        let mut objects = objects;
        with_command(&mut objects);
        let first = run_with(&objects, &[], &Report::default());
        let ready: Vec<(String, bool, &str, i32)> = first
            .objects
            .iter()
            .filter(|o| o.kind() == Kind::Revision)
            .map(|o| (o.name().to_string(), true, "", 1))
            .collect();
        let ready: Vec<(&str, bool, &str, i32)> = ready
            .iter()
            .map(|(n, r, why, k)| (n.as_str(), *r, *why, *k))
            .collect();
        let rep = report(&first, &ready);
        let out = run_with(&objects, &first.history, &rep);
        for o in &out.objects {
            if matches!(
                o.kind(),
                Kind::Service | Kind::Configuration | Kind::Route | Kind::Revision
            ) {
                let v = o.to_json();
                assert_eq!(cond(&v, "Ready").0, "True", "{file}: {v}");
            }
        }
        let routes = out
            .objects
            .iter()
            .filter(|o| o.kind() == Kind::Route)
            .count();
        assert_eq!(out.contract.serving.routes.len(), routes, "{file}");
        for r in &out.contract.serving.routes {
            assert_eq!(
                r.traffic.iter().map(|t| t.percent).sum::<u32>(),
                100,
                "{file}"
            );
        }
    }
}
