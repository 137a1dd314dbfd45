//! Sources: PingSource, ApiServerSource, SinkBinding, ContainerSource, GitHubSource,
//! KafkaSource, CloudPubSubSource.

use base64::Engine;

use super::common::{Errors, bootstrap_servers, delivery, kafka_topic, required_destination};
use super::eventing::filters;
use crate::admission::Hooks;
use crate::api::duck::{CloudEventOverrides, SecretValueFromSource};
use crate::api::sources::{
    ApiServerSource, CloudPubSubSource, ContainerSource, GitHubSource, KafkaNetSpec, KafkaSource,
    PingSource, SinkBinding,
};
use crate::duration;

/// Split a PingSource schedule into its optional `CRON_TZ=`/`TZ=` zone and the cron pattern.
pub fn split_schedule(schedule: &str) -> (Option<&str>, &str) {
    let s = schedule.trim();
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return match rest.split_once(char::is_whitespace) {
                Some((tz, pattern)) => (Some(tz), pattern.trim()),
                None => (Some(rest), ""),
            };
        }
    }
    (None, s)
}

/// Parse a cron pattern: five fields, six with a seconds field in front (Knit's extension, as
/// croner reads it: `*/2 * * * * *` is every two seconds), or a descriptor such as `@hourly`.
pub fn parse_cron(pattern: &str) -> crate::Result<croner::Cron> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|source| crate::Error::Cron { source })
}

fn time_zone(tz: &str, path: &str, errs: &mut Errors) {
    if jiff::tz::TimeZone::get(tz).is_err() {
        errs.add(path, format!("unknown time zone {tz:?}"));
    }
}

fn ce_overrides(o: Option<&CloudEventOverrides>, errs: &mut Errors) {
    let Some(o) = o else { return };
    for key in o.extensions.keys() {
        if !super::common::attribute_name(key) {
            errs.add(format!("spec.ceOverrides.extensions.{key}"), "invalid extension name: must be lower-case letters and digits, starting with a letter");
        }
        if matches!(
            key.as_str(),
            "specversion"
                | "id"
                | "source"
                | "type"
                | "time"
                | "subject"
                | "datacontenttype"
                | "dataschema"
        ) {
            errs.add(
                format!("spec.ceOverrides.extensions.{key}"),
                "must not override a CloudEvents context attribute",
            );
        }
    }
}

pub(crate) fn ping(p: &PingSource, errs: &mut Errors) {
    let s = &p.spec;
    match s.schedule.as_deref() {
        None | Some("") => errs.missing("spec.schedule"),
        Some(schedule) => {
            let (tz, pattern) = split_schedule(schedule);
            if let Some(tz) = tz {
                time_zone(tz, "spec.schedule", errs);
            }
            if let Err(e) = parse_cron(pattern) {
                errs.add(
                    "spec.schedule",
                    format!("invalid schedule {schedule:?}: {e}"),
                );
            }
        }
    }
    if let Some(tz) = &s.timezone {
        time_zone(tz, "spec.timezone", errs);
    }
    if s.data.is_some() && s.data_base64.is_some() {
        errs.add("spec", "expected exactly one, got both: data, dataBase64");
    }
    if let Some(b) = &s.data_base64
        && base64::engine::general_purpose::STANDARD.decode(b).is_err()
    {
        errs.add("spec.dataBase64", "invalid base64");
    }
    if let (Some(data), Some(ct)) = (&s.data, &s.content_type)
        && ct.starts_with("application/json")
        && serde_json::from_str::<serde_json::Value>(data).is_err()
    {
        errs.add(
            "spec.data",
            "contentType is application/json but data is not valid JSON",
        );
    }
    required_destination(s.sink.as_ref(), "spec.sink", errs);
    ce_overrides(s.ce_overrides.as_ref(), errs);
}

pub(crate) fn api_server(a: &ApiServerSource, hooks: &Hooks, errs: &mut Errors) {
    let s = &a.spec;
    if s.resources.is_empty() {
        errs.missing("spec.resources");
    }
    for (i, r) in s.resources.iter().enumerate() {
        if r.api_version.as_deref().is_none_or(str::is_empty) {
            errs.missing(format!("spec.resources[{i}].apiVersion"));
        }
        if r.kind.as_deref().is_none_or(str::is_empty) {
            errs.missing(format!("spec.resources[{i}].kind"));
        }
    }
    if let Some(mode) = &s.mode
        && mode != "Reference"
        && mode != "Resource"
    {
        errs.add(
            "spec.mode",
            format!("invalid value {mode:?}: must be Reference or Resource"),
        );
    }
    filters(&s.filters, "spec.filters", hooks, errs);
    required_destination(s.sink.as_ref(), "spec.sink", errs);
    ce_overrides(s.ce_overrides.as_ref(), errs);
}

pub(crate) fn sink_binding(b: &SinkBinding, errs: &mut Errors) {
    match &b.spec.subject {
        None => errs.missing("spec.subject"),
        Some(subj) => {
            if subj.api_version.as_deref().is_none_or(str::is_empty) {
                errs.missing("spec.subject.apiVersion");
            }
            if subj.kind.as_deref().is_none_or(str::is_empty) {
                errs.missing("spec.subject.kind");
            }
            match (&subj.name, &subj.selector) {
                (None, None) => errs.add(
                    "spec.subject",
                    "expected exactly one, got neither: name, selector",
                ),
                (Some(_), Some(_)) => errs.add(
                    "spec.subject",
                    "expected exactly one, got both: name, selector",
                ),
                _ => {}
            }
        }
    }
    required_destination(b.spec.sink.as_ref(), "spec.sink", errs);
    ce_overrides(b.spec.ce_overrides.as_ref(), errs);
}

pub(crate) fn container(c: &ContainerSource, errs: &mut Errors) {
    match c.spec.template.as_ref().and_then(|t| t.spec.as_ref()) {
        None => errs.missing("spec.template.spec.containers"),
        Some(pod) if pod.containers.is_empty() => errs.missing("spec.template.spec.containers"),
        Some(pod) => {
            for (i, ctr) in pod.containers.iter().enumerate() {
                if ctr.image.as_deref().is_none_or(str::is_empty)
                    && ctr.command.as_ref().is_none_or(Vec::is_empty)
                {
                    errs.missing(format!("spec.template.spec.containers[{i}].image"));
                }
            }
        }
    }
    required_destination(c.spec.sink.as_ref(), "spec.sink", errs);
    ce_overrides(c.spec.ce_overrides.as_ref(), errs);
}

/// GitHub webhook event names a GitHubSource may ask for: Knative's 39 (`ValidEvents` of
/// go-playground/webhooks) plus the events GitHub has added since (as in
/// `@octokit/webhooks-examples` 7.6.1), since Knit forwards the payload bytes unparsed.
pub const GITHUB_EVENT_TYPES: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "code_scanning_alert",
    "commit_comment",
    "create",
    "delete",
    "dependabot_alert",
    "deploy_key",
    "deployment",
    "deployment_review",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "github_app_authorization",
    "gollum",
    "installation",
    "installation_repositories",
    "integration_installation",
    "integration_installation_repositories",
    "issue_comment",
    "issues",
    "label",
    "marketplace_purchase",
    "member",
    "membership",
    "merge_group",
    "meta",
    "milestone",
    "org_block",
    "organization",
    "package",
    "page_build",
    "ping",
    "project",
    "project_card",
    "project_column",
    "projects_v2_item",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "push",
    "release",
    "repository",
    "repository_dispatch",
    "repository_import",
    "repository_vulnerability_alert",
    "security_advisory",
    "sponsorship",
    "star",
    "status",
    "team",
    "team_add",
    "watch",
    "workflow_dispatch",
    "workflow_job",
    "workflow_run",
];

fn secret_ref(s: Option<&SecretValueFromSource>, path: &str, errs: &mut Errors) {
    match s.and_then(|s| s.secret_key_ref.as_ref()) {
        None => errs.missing(format!("{path}.secretKeyRef")),
        Some(k) => {
            if k.name.as_deref().is_none_or(str::is_empty) {
                errs.missing(format!("{path}.secretKeyRef.name"));
            }
            if k.key.as_deref().is_none_or(str::is_empty) {
                errs.missing(format!("{path}.secretKeyRef.key"));
            }
        }
    }
}

pub(crate) fn github(g: &GitHubSource, errs: &mut Errors) {
    let s = &g.spec;
    match s.owner_and_repository.as_deref() {
        None | Some("") => errs.missing("spec.ownerAndRepository"),
        Some(o) => {
            let parts: Vec<&str> = o.split('/').collect();
            if parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty()) {
                errs.add(
                    "spec.ownerAndRepository",
                    format!("invalid value {o:?}: must be owner or owner/repository"),
                );
            }
        }
    }
    if s.event_types.is_empty() {
        errs.missing("spec.eventTypes");
    }
    for (i, t) in s.event_types.iter().enumerate() {
        if !GITHUB_EVENT_TYPES.contains(&t.as_str()) {
            errs.add(
                format!("spec.eventTypes[{i}]"),
                format!("unknown GitHub event type {t:?}"),
            );
        }
    }
    secret_ref(s.access_token.as_ref(), "spec.accessToken", errs);
    secret_ref(s.secret_token.as_ref(), "spec.secretToken", errs);
    if let Some(u) = &s.github_api_url
        && url::Url::parse(u).is_err()
    {
        errs.add("spec.githubAPIURL", format!("{u:?} is not a URL"));
    }
    required_destination(s.sink.as_ref(), "spec.sink", errs);
    ce_overrides(s.ce_overrides.as_ref(), errs);
}

pub(crate) fn pubsub(p: &CloudPubSubSource, errs: &mut Errors) {
    let s = &p.spec;
    if s.topic.as_deref().is_none_or(str::is_empty) {
        errs.missing("spec.topic");
    }
    if let Some(d) = &s.ack_deadline {
        match duration::parse_go_or_iso8601(d) {
            Ok(d) if d.as_secs() < 10 || d.as_secs() > 600 => {
                errs.add("spec.ackDeadline", "must be between 10s and 600s")
            }
            Ok(_) => {}
            Err(e) => errs.add("spec.ackDeadline", e.to_string()),
        }
    }
    if let Some(d) = &s.retention_duration {
        match duration::parse_go_or_iso8601(d) {
            Ok(d) if d.as_secs() < 600 || d.as_secs() > 7 * 86400 => {
                errs.add("spec.retentionDuration", "must be between 10m and 7 days")
            }
            Ok(_) => {}
            Err(e) => errs.add("spec.retentionDuration", e.to_string()),
        }
    }
    required_destination(s.sink.as_ref(), "spec.sink", errs);
    ce_overrides(s.ce_overrides.as_ref(), errs);
}

/// KafkaSource (eventing-kafka-broker `sources/v1/kafka_validation.go`), on the defaulted spec.
pub(crate) fn kafka(k: &KafkaSource, errs: &mut Errors) {
    let s = &k.spec;
    bootstrap_servers(&s.bootstrap_servers, "spec.bootstrapServers", errs);
    if s.topics.is_empty() {
        errs.missing("spec.topics");
    }
    for (i, t) in s.topics.iter().enumerate() {
        kafka_topic(t, &format!("spec.topics[{i}]"), errs);
    }
    if let Some(o) = &s.initial_offset
        && o != "earliest"
        && o != "latest"
    {
        errs.add(
            "spec.initialOffset",
            format!("invalid value {o:?}: must be earliest or latest"),
        );
    }
    if let Some(o) = &s.ordering
        && o != "ordered"
        && o != "unordered"
    {
        errs.add(
            "spec.ordering",
            format!("invalid value {o:?}: must be ordered or unordered"),
        );
    }
    if let Some(n) = s.consumers
        && n < 0
    {
        errs.add(
            "spec.consumers",
            format!("invalid value {n}: must be 0 or more"),
        );
    }
    if let Some(net) = &s.net {
        kafka_net(net, errs);
    }
    if let Some(d) = &s.delivery {
        delivery(d, "spec.delivery", errs);
    }
    required_destination(s.sink.as_ref(), "spec.sink", errs);
    ce_overrides(s.ce_overrides.as_ref(), errs);
}

/// `net`: every Secret key given must name its Secret and key (values are read at run time).
fn kafka_net(net: &KafkaNetSpec, errs: &mut Errors) {
    let mut refs = Vec::new();
    if let Some(sasl) = &net.sasl {
        refs.extend([
            ("sasl.user", &sasl.user),
            ("sasl.password", &sasl.password),
            ("sasl.type", &sasl.type_),
            ("sasl.roleARN", &sasl.role_arn),
            ("sasl.tokenProvider", &sasl.token_provider),
        ]);
    }
    if let Some(tls) = &net.tls {
        refs.extend([
            ("tls.cert", &tls.cert),
            ("tls.key", &tls.key),
            ("tls.caCert", &tls.ca_cert),
        ]);
    }
    for (field, value) in refs {
        if let Some(k) = value.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
            let path = format!("spec.net.{field}.secretKeyRef");
            if k.name.as_deref().is_none_or(str::is_empty) {
                errs.missing(format!("{path}.name"));
            }
            if k.key.as_deref().is_none_or(str::is_empty) {
                errs.missing(format!("{path}.key"));
            }
        }
    }
}
