//! The CLI as scripts run it (output not a terminal): input it cannot act on is refused
//! before anything is asked of the cluster or an exchange, with the reason.

use crate::support::*;

/// `candlepipe backfill binance BTC/USDT <args> --dev`: exit code, stdout, stderr.
async fn backfill(stack: &Stack, args: &[&str]) -> (Option<i32>, String, String) {
    let mut argv = vec!["backfill", "binance", "BTC/USDT"];
    argv.extend_from_slice(args);
    argv.push("--dev");
    cli_output(stack, &argv).await
}

#[tokio::test]
async fn input_the_cli_cannot_act_on_is_refused_before_any_call() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;

    // Seconds where milliseconds are meant: refused, with the milliseconds it may mean.
    let (status, out, err) = cli_output(
        &stack,
        &["get", "binance", "BTC/USDT", "1m", "--end", "1796083200"],
    )
    .await;
    assert_eq!(status, Some(1), "{out}");
    assert!(
        err.contains("--end") && err.contains("reads as seconds") && err.contains("1796083200000"),
        "{err}"
    );
    // A date is a time too.
    let (status, out, err) = cli_output(
        &stack,
        &[
            "get",
            "binance",
            "BTC/USDT",
            "1h",
            "--end",
            "2026-11-01",
            "--limit",
            "2",
            "--json",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{out} {err}");
    assert!(
        out.contains("\"t\":1793491200000"),
        "the hour opening at 2026-11-01: {out}"
    );
    let calls = stack.sim.requests("binance").await;

    // A page of no candles would ask the exchange for one candle per call: refused.
    let (status, _, err) = backfill(&stack, &["1m", "--since", "2026-11-01", "--page", "0"]).await;
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("--page") && err.contains("1..=1000"), "{err}");
    let (status, _, err) = backfill(&stack, &["1m", "--since", "1793491200"]).await;
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("--since") && err.contains("reads as seconds"),
        "{err}"
    );
    let (status, _, err) = backfill(
        &stack,
        &["1h", "--since", "2026-11-02", "--until", "2026-11-01"],
    )
    .await;
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("--since (2026-11-02T00:00:00Z) is after --until (2026-11-01T00:00:00Z)"),
        "{err}"
    );
    assert_eq!(
        stack.sim.requests("binance").await,
        calls,
        "no exchange call for refused input"
    );

    // No canary configured: nothing to route to.
    let (status, out, err) = cli_output(&stack, &["llm", "route", "--canary", "30"]).await;
    assert_eq!(status, Some(2), "{out}");
    assert!(err.contains("no canary is configured"), "{err}");
    let (status, out, _) = cli_output(&stack, &["llm", "route"]).await;
    assert_eq!(status, Some(0));
    assert!(
        out.contains("no canary configured") && !out.contains("go to the canary"),
        "{out}"
    );

    // A setting the file misspells is refused, with the one it is closest to.
    let dir = tempfile::tempdir().unwrap();
    let (typo, good) = (dir.path().join("typo.toml"), dir.path().join("good.toml"));
    std::fs::write(&typo, "natsurl = \"nats://127.0.0.1:1\"\nbinance_rsp = 5\n").unwrap();
    std::fs::write(&good, "binance_rps = 5\nllm_canary_model = \"m\"\n").unwrap();
    let (status, _, err) = cli_output(
        &stack,
        &["--config", typo.to_str().unwrap(), "llm", "route"],
    )
    .await;
    assert_eq!(status, Some(2), "{err}");
    assert!(
        err.contains("unknown settings")
            && err.contains("binance_rsp (did you mean binance_rps?)")
            && err.contains("natsurl (did you mean nats_url?)"),
        "{err}"
    );
    let (status, _, err) = cli_output(
        &stack,
        &["--config", good.to_str().unwrap(), "llm", "route"],
    )
    .await;
    assert_eq!(status, Some(0), "{err}");
}

#[tokio::test]
async fn symbols_are_taken_as_people_type_them_and_arguments_checked_by_the_parser() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    // Lower case, and Kraken's own asset codes, mean the usual symbol.
    let (status, out, err) = cli_output(
        &stack,
        &["get", "binance", "btc/usdt", "1h", "--limit", "2", "--json"],
    )
    .await;
    assert_eq!(status, Some(0), "{out} {err}");
    assert!(out.contains("\"symbol\":\"BTC/USDT\""), "{out}");
    let (status, out, err) = cli_output(
        &stack,
        &["get", "kraken", "xbt/usd", "1h", "--limit", "2", "--json"],
    )
    .await;
    assert_eq!(status, Some(0), "{out} {err}");
    assert!(out.contains("\"symbol\":\"BTC/USD\""), "{out}");
    assert!(
        err.contains("XBT/USD is Kraken's own name for BTC/USD"),
        "{err}"
    );

    // Values the parser knows to be wrong, refused with what is allowed.
    let (status, _, err) = cli_output(
        &stack,
        &[
            "get",
            "binance",
            "BTC/USDT",
            "1m",
            "--fill-gaps",
            "sometimes",
        ],
    )
    .await;
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("none") && err.contains("previous"), "{err}");
    let (status, _, err) = cli_output(
        &stack,
        &["watch", "binance", "BTC/USDT", "1m", "--count", "0"],
    )
    .await;
    assert_eq!(status, Some(2), "{err}");
    // The service's refusal of a watch is said as it is.
    let (status, _, err) = cli_output(&stack, &["watch", "binance", "BTC/USDT", "7m"]).await;
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("unsupported_interval") && !err.contains("stream worker running"),
        "{err}"
    );
}
