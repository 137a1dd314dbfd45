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

/// An extension: its name and the payload field (JSON pointer) it is read from.
type Ext = (&'static str, &'static str);

/// `owner`, `repository` and `sender`: the extensions of most kinds.
const REPO_SENDER: &[Ext] = &[
    ("owner", "/repository/owner/login"),
    ("repository", "/repository/name"),
    ("sender", "/sender/login"),
];
/// [`REPO_SENDER`] and `action`.
const REPO_SENDER_ACTION: &[Ext] = &[
    ("owner", "/repository/owner/login"),
    ("repository", "/repository/name"),
    ("sender", "/sender/login"),
    ("action", "/action"),
];

/// Where a kind's `subject` is read from.
#[derive(Clone, Copy)]
enum Subject {
    /// A payload field.
    Field(&'static str),
    /// What follows the last `/` of a URL field.
    UrlTail(&'static str),
    /// The `page_name` of each of `pages`, comma-separated (`gollum`).
    PageNames,
    /// No subject (kinds outside Knative's list).
    None,
}

/// How deliveries of some event kinds map: the common extensions, then the kinds' own, and
/// the subject.
struct Mapping {
    events: &'static [&'static str],
    common: &'static [Ext],
    own: &'static [Ext],
    subject: Subject,
}

const fn mapping(
    events: &'static [&'static str],
    common: &'static [Ext],
    own: &'static [Ext],
    subject: Subject,
) -> Mapping {
    Mapping {
        events,
        common,
        own,
        subject,
    }
}

/// Knative's GitHubSource mapping, kind by kind.
const MAPPINGS: &[Mapping] = &[
    mapping(
        &["check_run"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/check_run/id"),
    ),
    mapping(
        &["check_suite"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/check_suite/id"),
    ),
    mapping(
        &["commit_comment", "issue_comment"],
        REPO_SENDER_ACTION,
        &[],
        Subject::UrlTail("/comment/html_url"),
    ),
    mapping(
        &["create", "delete"],
        REPO_SENDER,
        &[("ref", "/ref")],
        Subject::Field("/ref_type"),
    ),
    mapping(
        &["deployment", "deployment_status"],
        REPO_SENDER,
        &[],
        Subject::Field("/deployment/id"),
    ),
    mapping(&["fork"], REPO_SENDER, &[], Subject::Field("/forkee/id")),
    mapping(&["gollum"], REPO_SENDER, &[], Subject::PageNames),
    mapping(
        &[
            "installation",
            "integration_installation",
            "installation_repositories",
            "integration_installation_repositories",
        ],
        &[],
        &[
            ("installation", "/installation/id"),
            ("sender", "/sender/login"),
            ("action", "/action"),
        ],
        Subject::Field("/installation/id"),
    ),
    mapping(
        &["issues"],
        REPO_SENDER_ACTION,
        &[("label", "/label/name"), ("assignee", "/assignee/login")],
        Subject::Field("/issue/number"),
    ),
    mapping(
        &["label"],
        REPO_SENDER_ACTION,
        &[("label", "/label/name")],
        Subject::Field("/label/name"),
    ),
    mapping(
        &["member"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/member/id"),
    ),
    mapping(
        &["membership"],
        &[],
        &[
            ("owner", "/organization/login"),
            ("scope", "/scope"),
            ("sender", "/sender/login"),
            ("action", "/action"),
        ],
        Subject::Field("/member/id"),
    ),
    mapping(
        &["milestone"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/milestone/number"),
    ),
    mapping(
        &["organization", "org_block"],
        &[],
        &[
            ("owner", "/organization/login"),
            ("sender", "/sender/login"),
            ("action", "/action"),
        ],
        Subject::Field("/action"),
    ),
    mapping(&["page_build"], REPO_SENDER, &[], Subject::Field("/id")),
    mapping(&["ping"], REPO_SENDER, &[], Subject::Field("/hook_id")),
    mapping(
        &["project", "project_card", "project_column"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/action"),
    ),
    mapping(
        &["public", "team_add"],
        REPO_SENDER,
        &[],
        Subject::Field("/repository/id"),
    ),
    mapping(
        &["pull_request"],
        REPO_SENDER_ACTION,
        &[
            ("installation", "/installation/id"),
            ("number", "/number"),
            ("label", "/label/name"),
            ("assignee", "/assignee/login"),
        ],
        Subject::Field("/pull_request/number"),
    ),
    mapping(
        &["pull_request_review_comment"],
        REPO_SENDER_ACTION,
        &[("installation", "/installation/id")],
        Subject::Field("/comment/id"),
    ),
    mapping(
        &["pull_request_review"],
        REPO_SENDER_ACTION,
        &[
            ("installation", "/installation/id"),
            ("review", "/review/state"),
        ],
        Subject::Field("/review/id"),
    ),
    mapping(
        &["push"],
        REPO_SENDER,
        &[
            ("installation", "/installation/id"),
            ("pusher", "/pusher/name"),
            ("ref", "/ref"),
            ("created", "/created"),
            ("deleted", "/deleted"),
            ("forced", "/forced"),
        ],
        Subject::UrlTail("/compare"),
    ),
    mapping(
        &["release"],
        REPO_SENDER_ACTION,
        &[
            ("installation", "/installation/id"),
            ("release", "/release/name"),
        ],
        Subject::Field("/release/tag_name"),
    ),
    mapping(
        &["repository", "watch"],
        REPO_SENDER_ACTION,
        &[],
        Subject::Field("/repository/id"),
    ),
    mapping(
        &["repository_vulnerability_alert"],
        &[],
        &[("action", "/action")],
        Subject::Field("/alert/id"),
    ),
    mapping(
        &["security_advisory"],
        &[],
        &[("action", "/action")],
        Subject::Field("/security_advisory/ghsa_id"),
    ),
    mapping(
        &["status"],
        REPO_SENDER,
        &[
            ("state", "/state"),
            ("name", "/name"),
            ("context", "/context"),
        ],
        Subject::Field("/sha"),
    ),
    mapping(
        &["team"],
        &[],
        &[("sender", "/sender/login"), ("action", "/action")],
        Subject::Field("/team/id"),
    ),
];

/// Kinds outside Knative's list: the common extensions the payload has, no subject.
const OTHER: Mapping = mapping(&[], REPO_SENDER_ACTION, &[], Subject::None);

/// The subject and the extensions (name, value) of `payload` delivered as `event`.
pub fn subject_and_extensions(
    event: &str,
    payload: &Value,
) -> (Option<String>, Vec<(&'static str, String)>) {
    let m = MAPPINGS
        .iter()
        .find(|m| m.events.contains(&event))
        .unwrap_or(&OTHER);
    let field = |pointer: &str| payload.pointer(pointer).and_then(text);
    let exts = m
        .common
        .iter()
        .chain(m.own)
        .filter_map(|(name, pointer)| Some((*name, field(pointer).filter(|v| !v.is_empty())?)))
        .collect();
    let subject = match m.subject {
        Subject::Field(pointer) => field(pointer),
        Subject::UrlTail(pointer) => field(pointer).map(|u| last_path_segment(&u)),
        Subject::PageNames => payload
            .pointer("/pages")
            .and_then(Value::as_array)
            .map(|pages| {
                pages
                    .iter()
                    .filter_map(|p| p.get("page_name").and_then(text))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        Subject::None => None,
    };
    (subject.filter(|s| !s.is_empty()), exts)
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
