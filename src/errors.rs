//! How a command says what went wrong, decided here for every command: the text of an
//! error chain (each cause once), its code (the service's wire codes, so a script reads the
//! CLI's errors and the service's alike), and with `--json` the service's error object on
//! stdout.

use std::io::Write;

use candlepipe_client::Error as ClientError;
use candlepipe_core::request::ErrorReply;
use candlepipe_core::{ErrorCode, WireError};
use candlepipe_exchange::FetchError;
use candlepipe_worker::cluster::markets::MarketError;
use candlepipe_worker::jobs::disposition::{fetch_code, market_code};

/// Input a command cannot act on (`bad_request`): a time it cannot read, a range that ends
/// before it starts, a file it cannot write.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Input(pub String);

/// The chain's texts joined by `: `, leaving out a cause its effect already said (many
/// errors repeat their source's text: "IO error: Connection refused (os error 111)").
pub fn text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        // The service's and the exchange's codes are said apart ([`report`]).
        let t = match (
            cause.downcast_ref::<WireError>(),
            cause.downcast_ref::<ClientError>(),
        ) {
            (Some(w), _) => w.message.clone(),
            (_, Some(ClientError::Service { message, .. })) => message.clone(),
            _ => cause.to_string(),
        };
        if t.is_empty() || out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

/// The code the service or the exchange gave, if the error came from either.
fn given(e: &anyhow::Error) -> Option<(ErrorCode, Option<u64>)> {
    e.chain().find_map(|cause| {
        if let Some(w) = cause.downcast_ref::<WireError>() {
            return Some((w.code, w.retry_after_ms));
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            let after = c.retry_after().map(|d| d.as_millis() as u64);
            return c.code().map(|code| (code, after));
        }
        if let Some(f) = cause.downcast_ref::<FetchError>() {
            return Some((fetch_code(f), None));
        }
        cause
            .downcast_ref::<MarketError>()
            .map(|m| (market_code(m), None))
    })
}

/// The error as the service would answer it — its own code, `bad_request` for input,
/// `timeout` when no answer came in time, else `unavailable` (something the command needs
/// cannot be reached or used) — and whether the code is the service's or the exchange's own.
fn wire(e: &anyhow::Error) -> (WireError, bool) {
    let given = given(e);
    let (code, retry_after_ms) = given.unwrap_or_else(|| {
        let code = e
            .chain()
            .find_map(|cause| {
                if cause.is::<Input>() {
                    return Some(ErrorCode::BadRequest);
                }
                match cause.downcast_ref::<ClientError>()? {
                    ClientError::TimedOut { .. } => Some(ErrorCode::Timeout),
                    _ => None,
                }
            })
            .unwrap_or(ErrorCode::Unavailable);
        (code, None)
    });
    let w = WireError {
        code,
        message: text(e),
        retry_after_ms,
    };
    (w, given.is_some())
}

/// Says `e`: with `json`, `{"ok":false,"error":{…}}` on stdout; else `error: …` on stderr,
/// with the code first when the service or the exchange gave one.
pub fn report(e: &anyhow::Error, json: bool) {
    let (w, given) = wire(e);
    if json {
        if let Ok(line) = serde_json::to_string(&ErrorReply::new(w)) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        return;
    }
    let after = w
        .retry_after_ms
        .map(|ms| format!(" (retry after {ms} ms)"))
        .unwrap_or_default();
    match given {
        true => eprintln!("error: {}: {}{after}", w.code, w.message),
        false => eprintln!("error: {}{after}", w.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_its_effect_already_said_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("IO error: {0}")]
        struct Wrapper(#[source] std::io::Error);
        let e = anyhow::Error::new(Wrapper(io)).context("connecting to NATS at nats://h:1");
        assert_eq!(
            text(&e),
            "connecting to NATS at nats://h:1: IO error: Connection refused"
        );
        assert_eq!(wire(&e).0.code, ErrorCode::Unavailable);
    }

    #[test]
    fn codes_come_from_the_service_the_exchange_or_the_input() {
        let service = anyhow::Error::new(ClientError::Service {
            code: ErrorCode::RateLimited,
            message: "busy".into(),
            retry_after: Some(std::time::Duration::from_millis(1500)),
        });
        let w = wire(&service).0;
        assert_eq!(
            (w.code, w.retry_after_ms),
            (ErrorCode::RateLimited, Some(1500))
        );
        assert_eq!(w.message, "busy", "the code is said apart");
        let fetch = anyhow::Error::new(FetchError::UnknownSymbol("no FOOUSDT".into()))
            .context("binance:FOO-USDT:1m");
        assert_eq!(wire(&fetch).0.code, ErrorCode::UnknownSymbol);
        let input = anyhow::Error::new(Input("not a time".into())).context("--since");
        assert_eq!(wire(&input).0.code, ErrorCode::BadRequest);
        assert_eq!(wire(&input).0.message, "--since: not a time");
        let timed_out = anyhow::Error::new(ClientError::TimedOut {
            subject: "s".into(),
            after: std::time::Duration::from_secs(1),
        });
        assert_eq!(wire(&timed_out).0.code, ErrorCode::Timeout);
    }
}
