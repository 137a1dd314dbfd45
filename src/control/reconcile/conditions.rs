//! Knative-style condition sets: dependent conditions roll up into `Ready`.

use knit_crds::api::duck::Condition;

/// Tri-state condition status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn as_str(self) -> &'static str {
        match self {
            Tri::True => "True",
            Tri::False => "False",
            Tri::Unknown => "Unknown",
        }
    }
}

/// Conditions of one object being computed.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    list: Vec<Condition>,
}

impl Conditions {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn set(
        &mut self,
        type_: &str,
        status: Tri,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        let message: String = message.into();
        let c = Condition {
            type_: type_.to_string(),
            status: status.as_str().to_string(),
            severity: None,
            last_transition_time: None,
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            message: (!message.is_empty()).then_some(message),
        };
        match self.list.iter_mut().find(|x| x.type_ == type_) {
            Some(x) => *x = c,
            None => self.list.push(c),
        }
        self
    }

    pub(crate) fn ok(&mut self, type_: &str) -> &mut Self {
        self.set(type_, Tri::True, "", "")
    }

    pub(crate) fn ok_because(
        &mut self,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        self.set(type_, Tri::True, reason, message)
    }

    pub(crate) fn fail(
        &mut self,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        self.set(type_, Tri::False, reason, message)
    }

    pub(crate) fn unknown(
        &mut self,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        self.set(type_, Tri::Unknown, reason, message)
    }

    /// A condition that informs without affecting `Ready` (severity `Warning`).
    pub(crate) fn warning(
        &mut self,
        type_: &str,
        ok: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        self.set(
            type_,
            if ok { Tri::True } else { Tri::False },
            reason,
            message,
        );
        if let Some(c) = self.list.iter_mut().find(|x| x.type_ == type_) {
            c.severity = Some("Warning".into());
        }
        self
    }

    pub(crate) fn get(&self, type_: &str) -> Option<&Condition> {
        self.list.iter().find(|c| c.type_ == type_)
    }

    pub(crate) fn is_true(&self, type_: &str) -> bool {
        self.get(type_).is_some_and(|c| c.status == "True")
    }

    /// Compute `Ready` from `dependents`, as Knative's ConditionSet does: True when all are
    /// True; otherwise the first False (or, failing that, the first Unknown or missing one)
    /// gives its status, reason and message.
    pub(crate) fn roll_up(mut self, dependents: &[&str]) -> Vec<Condition> {
        let mut ready = Condition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        };
        let first = |status: &str| {
            dependents
                .iter()
                .filter_map(|d| self.get(d))
                .find(|c| c.status == status)
                .cloned()
        };
        if let Some(f) = first("False") {
            ready.status = "False".into();
            ready.reason = f.reason;
            ready.message = f.message;
        } else if let Some(u) = first("Unknown") {
            ready.status = "Unknown".into();
            ready.reason = u.reason;
            ready.message = u.message;
        } else if let Some(missing) = dependents.iter().find(|d| self.get(d).is_none()) {
            ready.status = "Unknown".into();
            ready.reason = Some(format!("{missing}Unknown"));
        }
        self.list.retain(|c| c.type_ != "Ready");
        self.list.push(ready);
        self.list.sort_by(|a, b| a.type_.cmp(&b.type_));
        self.list
    }
}

/// Status of a `Ready` condition within a list.
pub(crate) fn ready_of(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}
