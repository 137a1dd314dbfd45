//! What a GitHub delivery becomes: the CloudEvent's `type`, `source`, `subject` and extensions,
//! following Knative's GitHubSource mapping per event kind (`subject` from the kind's number,
//! id, URL or field; extensions `owner`, `repository`, `sender`, `action` and the kind's own).
//!
//! Differences from Knative, on purpose: the data is the original body (set by the caller);
//! extension values absent from the payload (or empty) are left out rather than sent empty or
//! zero (an empty extension is not a valid CloudEvents value for Knit's ingress); and kinds
//! outside Knative's list (Knative answers 404) are forwarded with no subject and the common
//! extensions that the payload has.

use serde_json::Value;

/// Prefix of every event `type`.
pub const TYPE_PREFIX: &str = "dev.knative.source.github.";

/// `type` of a delivery of `event` (the `X-GitHub-Event` header).
pub fn event_type(event: &str) -> String {
    format!("{TYPE_PREFIX}{event}")
}

/// `source` of a source watching `owner_and_repository` (`owner/repo`, or an organisation).
pub fn event_source(owner_and_repository: &str) -> String {
    format!("https://github.com/{owner_and_repository}")
}

/// Whether `event` is a plausible `X-GitHub-Event` value (it becomes part of the type).
pub fn valid_event_name(event: &str) -> bool {
    !event.is_empty()
        && event.len() <= 100
        && event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The subject and the extensions (name, value) of `payload` delivered as `event`.
pub fn subject_and_extensions(
    event: &str,
    payload: &Value,
) -> (Option<String>, Vec<(&'static str, String)>) {
    let mut m = Mapped {
        payload,
        exts: Vec::new(),
    };
    let subject = match event {
        "check_run" => {
            m.repo_sender_action();
            m.text("/check_run/id")
        }
        "check_suite" => {
            m.repo_sender_action();
            m.text("/check_suite/id")
        }
        "commit_comment" | "issue_comment" => {
            m.repo_sender_action();
            m.text("/comment/html_url").map(|u| last_path_segment(&u))
        }
        "create" | "delete" => {
            m.repo_sender();
            m.ext("ref", "/ref");
            m.text("/ref_type")
        }
        "deployment" | "deployment_status" => {
            m.repo_sender();
            m.text("/deployment/id")
        }
        "fork" => {
            m.repo_sender();
            m.text("/forkee/id")
        }
        "gollum" => {
            m.repo_sender();
            payload
                .pointer("/pages")
                .and_then(Value::as_array)
                .map(|pages| {
                    pages
                        .iter()
                        .filter_map(|p| p.get("page_name").and_then(text))
                        .collect::<Vec<_>>()
                        .join(",")
                })
        }
        "installation"
        | "integration_installation"
        | "installation_repositories"
        | "integration_installation_repositories" => {
            m.ext("installation", "/installation/id");
            m.ext("sender", "/sender/login");
            m.ext("action", "/action");
            m.text("/installation/id")
        }
        "issues" => {
            m.repo_sender_action();
            m.ext("label", "/label/name");
            m.ext("assignee", "/assignee/login");
            m.text("/issue/number")
        }
        "label" => {
            m.repo_sender_action();
            m.ext("label", "/label/name");
            m.text("/label/name")
        }
        "member" => {
            m.repo_sender_action();
            m.text("/member/id")
        }
        "membership" => {
            m.ext("owner", "/organization/login");
            m.ext("scope", "/scope");
            m.ext("sender", "/sender/login");
            m.ext("action", "/action");
            m.text("/member/id")
        }
        "milestone" => {
            m.repo_sender_action();
            m.text("/milestone/number")
        }
        "organization" | "org_block" => {
            m.ext("owner", "/organization/login");
            m.ext("sender", "/sender/login");
            m.ext("action", "/action");
            m.text("/action")
        }
        "page_build" => {
            m.repo_sender();
            m.text("/id")
        }
        "ping" => {
            m.repo_sender();
            m.text("/hook_id")
        }
        "project" | "project_card" | "project_column" => {
            m.repo_sender_action();
            m.text("/action")
        }
        "public" | "team_add" => {
            m.repo_sender();
            m.text("/repository/id")
        }
        "pull_request" => {
            m.repo_sender_action();
            m.ext("installation", "/installation/id");
            m.ext("number", "/number");
            m.ext("label", "/label/name");
            m.ext("assignee", "/assignee/login");
            m.text("/pull_request/number")
        }
        "pull_request_review_comment" => {
            m.repo_sender_action();
            m.ext("installation", "/installation/id");
            m.text("/comment/id")
        }
        "pull_request_review" => {
            m.repo_sender_action();
            m.ext("installation", "/installation/id");
            m.ext("review", "/review/state");
            m.text("/review/id")
        }
        "push" => {
            m.repo_sender();
            m.ext("installation", "/installation/id");
            m.ext("pusher", "/pusher/name");
            m.ext("ref", "/ref");
            m.ext("created", "/created");
            m.ext("deleted", "/deleted");
            m.ext("forced", "/forced");
            m.text("/compare").map(|u| last_path_segment(&u))
        }
        "release" => {
            m.repo_sender_action();
            m.ext("installation", "/installation/id");
            m.ext("release", "/release/name");
            m.text("/release/tag_name")
        }
        "repository" | "watch" => {
            m.repo_sender_action();
            m.text("/repository/id")
        }
        "repository_vulnerability_alert" => {
            m.ext("action", "/action");
            m.text("/alert/id")
        }
        "security_advisory" => {
            m.ext("action", "/action");
            m.text("/security_advisory/ghsa_id")
        }
        "status" => {
            m.repo_sender();
            m.ext("state", "/state");
            m.ext("name", "/name");
            m.ext("context", "/context");
            m.text("/sha")
        }
        "team" => {
            m.ext("sender", "/sender/login");
            m.ext("action", "/action");
            m.text("/team/id")
        }
        _ => {
            m.repo_sender_action();
            None
        }
    };
    (subject.filter(|s| !s.is_empty()), m.exts)
}

struct Mapped<'a> {
    payload: &'a Value,
    exts: Vec<(&'static str, String)>,
}

impl Mapped<'_> {
    fn text(&self, pointer: &str) -> Option<String> {
        self.payload.pointer(pointer).and_then(text)
    }

    fn ext(&mut self, name: &'static str, pointer: &str) {
        if let Some(v) = self.text(pointer).filter(|v| !v.is_empty()) {
            self.exts.push((name, v));
        }
    }

    fn repo_sender(&mut self) {
        self.ext("owner", "/repository/owner/login");
        self.ext("repository", "/repository/name");
        self.ext("sender", "/sender/login");
    }

    fn repo_sender_action(&mut self) {
        self.repo_sender();
        self.ext("action", "/action");
    }
}

/// A scalar as text (`null`, objects and arrays have none).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What follows the last `/` of `url` (empty when there is none, as Knative).
fn last_path_segment(url: &str) -> String {
    url.rsplit_once('/')
        .map(|(_, last)| last.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ext<'a>(exts: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        exts.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    fn repo() -> Value {
        json!({"id": 186853002, "name": "Hello-World", "owner": {"login": "Codertocat"}})
    }

    #[test]
    fn type_and_source() {
        assert_eq!(
            event_type("pull_request"),
            "dev.knative.source.github.pull_request"
        );
        assert_eq!(event_source("knit/knit"), "https://github.com/knit/knit");
        assert!(valid_event_name("pull_request_review_comment"));
        assert!(!valid_event_name("Push"));
        assert!(!valid_event_name("a.b"));
        assert!(!valid_event_name(""));
    }

    #[test]
    fn pull_request_number_and_extensions() {
        let p = json!({"action": "labeled", "number": 2, "pull_request": {"number": 2},
            "label": {"name": "bug"}, "repository": repo(), "sender": {"login": "octo"},
            "installation": {"id": 7}});
        let (subject, exts) = subject_and_extensions("pull_request", &p);
        assert_eq!(subject.as_deref(), Some("2"));
        assert_eq!(ext(&exts, "owner"), Some("Codertocat"));
        assert_eq!(ext(&exts, "repository"), Some("Hello-World"));
        assert_eq!(ext(&exts, "sender"), Some("octo"));
        assert_eq!(ext(&exts, "action"), Some("labeled"));
        assert_eq!(ext(&exts, "number"), Some("2"));
        assert_eq!(ext(&exts, "label"), Some("bug"));
        assert_eq!(ext(&exts, "installation"), Some("7"));
        assert_eq!(ext(&exts, "assignee"), None);
    }

    #[test]
    fn push_subject_is_the_last_segment_of_compare() {
        let p = json!({"ref": "refs/tags/simple-tag", "created": true, "deleted": false, "forced": false,
            "compare": "https://github.com/Codertocat/Hello-World/compare/a10867b14bb7...000000000000",
            "pusher": {"name": "Codertocat"}, "repository": repo(), "sender": {"login": "Codertocat"}});
        let (subject, exts) = subject_and_extensions("push", &p);
        assert_eq!(subject.as_deref(), Some("a10867b14bb7...000000000000"));
        assert_eq!(ext(&exts, "pusher"), Some("Codertocat"));
        assert_eq!(ext(&exts, "ref"), Some("refs/tags/simple-tag"));
        assert_eq!(ext(&exts, "created"), Some("true"));
        assert_eq!(ext(&exts, "deleted"), Some("false"));
        assert_eq!(ext(&exts, "forced"), Some("false"));
    }

    #[test]
    fn comments_ids_fields_and_pages() {
        let p = json!({"action": "created", "comment": {"id": 5,
            "html_url": "https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400"},
            "repository": repo(), "sender": {"login": "Codertocat"}});
        assert_eq!(
            subject_and_extensions("issue_comment", &p).0.as_deref(),
            Some("1#issuecomment-492700400")
        );
        assert_eq!(
            subject_and_extensions("pull_request_review_comment", &p)
                .0
                .as_deref(),
            Some("5")
        );

        let p = json!({"ref": "simple-tag", "ref_type": "tag", "repository": repo(), "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("create", &p);
        assert_eq!(s.as_deref(), Some("tag"));
        assert_eq!(ext(&exts, "ref"), Some("simple-tag"));

        let p = json!({"pages": [{"page_name": "Home"}, {"page_name": "Other"}], "repository": repo(), "sender": {"login": "a"}});
        assert_eq!(
            subject_and_extensions("gollum", &p).0.as_deref(),
            Some("Home,Other")
        );

        let p = json!({"release": {"tag_name": "0.0.1", "name": "First"}, "action": "published", "repository": repo(), "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("release", &p);
        assert_eq!(s.as_deref(), Some("0.0.1"));
        assert_eq!(ext(&exts, "release"), Some("First"));
        // An empty release name is left out (an empty extension is not a valid value).
        let p = json!({"release": {"tag_name": "0.0.1", "name": ""}, "action": "created"});
        let (_, exts) = subject_and_extensions("release", &p);
        assert_eq!(ext(&exts, "release"), None);

        let p = json!({"sha": "6113728f", "state": "success", "name": "Codertocat/Hello-World", "context": "default", "repository": repo(), "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("status", &p);
        assert_eq!(s.as_deref(), Some("6113728f"));
        assert_eq!(ext(&exts, "state"), Some("success"));
        assert_eq!(ext(&exts, "context"), Some("default"));

        let p = json!({"action": "starred", "repository": repo(), "sender": {"login": "a"}});
        assert_eq!(
            subject_and_extensions("watch", &p).0.as_deref(),
            Some("186853002")
        );
        assert_eq!(
            subject_and_extensions("ping", &json!({"hook_id": 42}))
                .0
                .as_deref(),
            Some("42")
        );
        let p = json!({"action": "member_added", "scope": "team", "member": {"id": 9}, "organization": {"login": "org"}, "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("membership", &p);
        assert_eq!(s.as_deref(), Some("9"));
        assert_eq!(ext(&exts, "owner"), Some("org"));
        assert_eq!(ext(&exts, "scope"), Some("team"));
        let p = json!({"action": "created", "organization": {"login": "org"}, "sender": {"login": "a"}});
        assert_eq!(
            subject_and_extensions("organization", &p).0.as_deref(),
            Some("created")
        );
        let p =
            json!({"action": "published", "security_advisory": {"ghsa_id": "GHSA-rf4j-j272-fj86"}});
        assert_eq!(
            subject_and_extensions("security_advisory", &p).0.as_deref(),
            Some("GHSA-rf4j-j272-fj86")
        );
    }

    #[test]
    fn issues_optional_extensions_and_unknown_kinds() {
        let p = json!({"action": "opened", "issue": {"number": 1}, "repository": repo(), "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("issues", &p);
        assert_eq!(s.as_deref(), Some("1"));
        assert_eq!(ext(&exts, "label"), None);
        assert_eq!(ext(&exts, "assignee"), None);
        let p = json!({"action": "assigned", "issue": {"number": 1}, "assignee": {"login": "b"}, "label": null});
        let (_, exts) = subject_and_extensions("issues", &p);
        assert_eq!(ext(&exts, "assignee"), Some("b"));
        assert_eq!(ext(&exts, "label"), None);

        let p = json!({"action": "completed", "workflow_job": {"id": 1}, "repository": repo(), "sender": {"login": "a"}});
        let (s, exts) = subject_and_extensions("workflow_job", &p);
        assert_eq!(s, None);
        assert_eq!(ext(&exts, "action"), Some("completed"));
        assert_eq!(ext(&exts, "repository"), Some("Hello-World"));
        // A payload of the wrong shape maps to nothing rather than failing.
        assert_eq!(
            subject_and_extensions("push", &json!([1, 2])),
            (None, vec![])
        );
    }

    #[test]
    fn extension_names_are_valid_cloudevents_names() {
        let p = json!({"action": "a", "number": 1, "label": {"name": "l"}, "assignee": {"login": "x"},
            "installation": {"id": 1}, "review": {"state": "s"}, "pusher": {"name": "p"}, "ref": "r",
            "created": true, "deleted": true, "forced": true, "release": {"name": "n"}, "state": "s",
            "name": "n", "context": "c", "scope": "s", "organization": {"login": "o"},
            "repository": repo(), "sender": {"login": "x"}});
        for ev in [
            "pull_request",
            "pull_request_review",
            "push",
            "release",
            "status",
            "membership",
            "issues",
            "label",
        ] {
            for (name, _) in subject_and_extensions(ev, &p).1 {
                assert!(
                    name.len() <= 20
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "{name}"
                );
            }
        }
    }
}
