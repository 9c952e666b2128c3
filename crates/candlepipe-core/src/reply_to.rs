//! Where a worker may answer: inbox subjects only. A request's reply subject (and an async
//! analysis job's `Candlepipe-Reply`) is chosen by whoever publishes the request, so a
//! worker that answered anywhere could be made to publish into the job stream, a control
//! subject or another application's subjects. Workers answer only on subjects under an
//! allowed prefix: `_INBOX.` (every NATS client's default) and the prefixes an operator
//! configures (`CANDLEPIPE_REPLY_PREFIXES`, e.g. a tenant's `_INBOX_desk1.`).

use std::fmt;

/// Every NATS client's default inbox prefix.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX.";

/// Why a reply subject is refused; `reason` labels the refusal metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a subject one can publish on (empty, too long, spaces or control characters,
    /// wildcards, empty tokens).
    Malformed,
    /// A valid subject outside every allowed inbox prefix.
    NotInbox,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::NotInbox => "not_inbox",
        }
    }
}

/// The allowed inbox prefixes; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyPolicy {
    prefixes: Vec<String>,
}

impl Default for ReplyPolicy {
    fn default() -> Self {
        ReplyPolicy {
            prefixes: vec![DEFAULT_INBOX_PREFIX.to_string()],
        }
    }
}

impl fmt::Display for ReplyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefixes.join(", "))
    }
}

impl ReplyPolicy {
    /// `_INBOX.` and `extra`, each a subject prefix ending in `.` (`_INBOX_desk1.`), outside
    /// the `$` system subjects. `Err` names the prefix that is not.
    pub fn with_prefixes<I, S>(extra: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = ReplyPolicy::default();
        for p in extra {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let body = p.strip_suffix('.').ok_or_else(|| {
                format!("reply prefix {p:?} must end with '.' (e.g. \"_INBOX_desk1.\")")
            })?;
            if p.starts_with('$') || check_subject(body).is_err() {
                return Err(format!(
                    "reply prefix {p:?} is not a subject prefix one may answer on (no `$`, \
                     wildcards, spaces or empty tokens)"
                ));
            }
            if !policy.prefixes.iter().any(|q| q == p) {
                policy.prefixes.push(p.to_string());
            }
        }
        Ok(policy)
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Whether a worker may publish an answer on `subject`.
    pub fn check(&self, subject: &str) -> Result<(), Refused> {
        check_subject(subject)?;
        let under = |p: &String| subject.len() > p.len() && subject.starts_with(p.as_str());
        match self.prefixes.iter().any(under) {
            true => Ok(()),
            false => Err(Refused::NotInbox),
        }
    }

    /// The `bad_request` an async job's stored answer carries when its `Candlepipe-Reply`
    /// is refused.
    pub fn refusal(&self, subject: &str, refused: Refused) -> crate::WireError {
        {
            let why = match refused {
                Refused::Malformed => "not a subject to publish on (1 to 256 bytes, no \
                                       spaces, control characters, wildcards or empty tokens)"
                    .to_string(),
                Refused::NotInbox => format!("not an inbox (allowed prefixes: {self})"),
            };
            crate::WireError::new(
                crate::ErrorCode::BadRequest,
                format!(
                    "Candlepipe-Reply {:?} is not allowed: {why}",
                    subject.chars().take(80).collect::<String>()
                ),
            )
        }
    }
}

/// A subject one can publish on: 1 to 256 bytes, no spaces or control characters, no
/// wildcards, no empty tokens.
fn check_subject(subject: &str) -> Result<(), Refused> {
    let malformed = subject.is_empty()
        || subject.len() > 256
        || subject.bytes().any(|b| b <= b' ' || b == 0x7f)
        || subject
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">");
    match malformed {
        true => Err(Refused::Malformed),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inboxes_under_an_allowed_prefix_are_answered() {
        let p = ReplyPolicy::with_prefixes(["_INBOX_desk1."]).unwrap();
        for ok in ["_INBOX.abc.1", "_INBOX.x", "_INBOX_desk1.nuid.7"] {
            assert_eq!(p.check(ok), Ok(()), "{ok}");
        }
        for not_inbox in [
            "candlepipe.jobs.fill.binance",
            "candlepipe.jobs.analyze",
            "candlepipe.control.llm.route",
            "candlepipe.candles.ready.binance.BTC-USDT.1m",
            "orders.new",
            "$JS.API.STREAM.DELETE.CANDLEPIPE_JOBS",
            "_INBOX",
            "_INBOXES.a",
            "_INBOX_desk2.a",
            "results.desk-7",
        ] {
            assert_eq!(p.check(not_inbox), Err(Refused::NotInbox), "{not_inbox}");
        }
        let long = format!("_INBOX.{}", "a".repeat(256));
        for bad in [
            "",
            "_INBOX.",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOX..a",
            "_INBOX.a b",
            "_INBOX.a\tb",
            &long,
        ] {
            assert_eq!(p.check(bad), Err(Refused::Malformed), "{bad:?}");
        }
        assert_eq!(
            ReplyPolicy::default().check("_INBOX_desk1.a"),
            Err(Refused::NotInbox)
        );
    }

    #[test]
    fn configured_prefixes_are_checked() {
        assert!(ReplyPolicy::with_prefixes(["_INBOX_desk1"]).is_err());
        assert!(ReplyPolicy::with_prefixes(["$JS."]).is_err());
        assert!(ReplyPolicy::with_prefixes(["a.*."]).is_err());
        assert!(ReplyPolicy::with_prefixes(["."]).is_err());
        let p = ReplyPolicy::with_prefixes([" _INBOX_a. ", "", "_INBOX."]).unwrap();
        assert_eq!(p.prefixes(), ["_INBOX.", "_INBOX_a."]);
        let e = p.refusal("candlepipe.jobs.analyze", Refused::NotInbox);
        assert_eq!(e.code, crate::ErrorCode::BadRequest);
        assert!(e.message.contains("not an inbox"), "{}", e.message);
    }
}
