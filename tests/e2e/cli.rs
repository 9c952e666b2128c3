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

/// The one JSON line a command printed.
fn json_line(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[tokio::test]
async fn every_error_is_said_once_with_its_code_and_as_json_on_stdout_with_json() {
    let stack = stack().await;

    // With --json, errors are the service's error object on stdout: the CLI's own input…
    let (status, out, err) = cli_output(
        &stack,
        &[
            "get",
            "binance",
            "BTC/USDT",
            "1m",
            "--json",
            "--end",
            "yesterday",
        ],
    )
    .await;
    assert_eq!(status, Some(1), "{err}");
    let reply = json_line(&out);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("--end: \"yesterday\" is not a time"),
        "{reply}"
    );
    // …nobody to answer (no worker runs yet)…
    let (status, out, _) =
        cli_output(&stack, &["get", "binance", "BTC/USDT", "1m", "--json"]).await;
    assert_eq!(status, Some(1));
    let reply = json_line(&out);
    assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody serves candlepipe.candles.get"),
        "{reply}"
    );
    // …and NATS out of reach: said once, not the cause's text twice.
    let dead = [("CANDLEPIPE_NATS_URL", "nats://127.0.0.1:1".to_string())];
    for args in [
        &["stats", "--json"][..],
        &["dlq", "list", "--json"],
        &["get", "kraken", "BTC/USD", "1h", "--json"],
    ] {
        let (status, out, err) = cli_in(&stack, &dead, args).await;
        assert_eq!(status, Some(1), "{args:?}: {err}");
        let reply = json_line(&out);
        assert_eq!(reply["error"]["code"], "unavailable", "{args:?}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert_eq!(message.matches("refused").count(), 1, "{args:?}: {message}");
    }
    let (status, out, err) = cli_in(&stack, &dead, &["dlq", "list"]).await;
    assert_eq!((status, out.as_str()), (Some(1), ""), "{err}");
    assert!(
        err.starts_with("error: connecting to NATS at nats://127.0.0.1:1")
            && err.matches("refused").count() == 1,
        "{err}"
    );

    // Backfill's errors carry the codes get's do.
    let (status, _, err) = cli_output(
        &stack,
        &[
            "backfill",
            "ftx",
            "BTC/USDT",
            "1m",
            "--since",
            "2026-11-01",
            "--dev",
        ],
    )
    .await;
    assert_eq!(status, Some(1));
    assert!(
        err.contains("error: unknown_exchange: unknown exchange 'ftx'"),
        "{err}"
    );
    let (status, _, err) = cli_output(
        &stack,
        &[
            "backfill",
            "binance",
            "NOPE/USDT",
            "1h",
            "--since",
            "2026-11-01",
            "--dev",
        ],
    )
    .await;
    assert_eq!(status, Some(1));
    assert!(err.contains("error: unknown_symbol: "), "{err}");
    let (status, _, err) = cli_output(
        &stack,
        &[
            "backfill",
            "coinbase",
            "BTC/USD",
            "7m",
            "--since",
            "2026-11-01",
            "--dev",
        ],
    )
    .await;
    assert_eq!(status, Some(1));
    assert!(err.contains("error: unsupported_interval: "), "{err}");

    // Export refuses a place it cannot write before it fetches anything.
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-folder").join("out.csv");
    let asked = stack.sim.requests("binance").await;
    for out in [nowhere.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let (status, _, err) = cli_output(
            &stack,
            &[
                "export",
                "binance",
                "BTC/USDT",
                "1h",
                "--since",
                "2026-11-01",
                "--format",
                "csv",
                "--out",
                out,
                "--dev",
            ],
        )
        .await;
        assert_eq!(status, Some(1), "{err}");
        assert!(err.contains(&format!("error: --out {out}")), "{err}");
    }
    assert_eq!(
        stack.sim.requests("binance").await,
        asked,
        "nothing fetched"
    );
}

#[tokio::test]
async fn check_names_the_running_roles_and_probes_the_websockets() {
    let stack = stack().await;
    // Nobody runs: candles would go unanswered.
    let (status, out) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_eq!(status, Some(1), "{out}");
    assert!(
        out.contains(
            "FAIL  workers    no worker answered the roll call on candlepipe.control.ping"
        ),
        "{out}"
    );

    // Ingest and fill: candles work, analyses and live series do not.
    let a = stack.worker(&["ingest", "fill"]).await;
    let (status, out) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_eq!(status, Some(0), "{out}");
    assert!(
        out.contains("ok    workers    1 process: ingest 1, fill 1\n"),
        "{out}"
    );
    assert!(
        out.contains("warn  workers    no analyze worker")
            && out.contains("warn  workers    no stream worker"),
        "{out}"
    );
    drop(a);

    // Only a stream worker: nothing answers candles.get.
    let _s = stack.worker(&["stream"]).await;
    let (status, out) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_eq!(status, Some(1), "{out}");
    assert!(
        out.contains("FAIL  workers    1 process: stream 1; no ingest or fill worker"),
        "{out}"
    );
    let _all = stack.worker(&["all"]).await;
    let (status, out) = cli(&stack, &["check"]).await;
    assert_eq!(status, Some(0), "{out}");
    assert!(
        out.contains(
            "ok    workers    2 processes: ingest 1, fill 1, analyze 1, stream 2, gateway 1"
        ),
        "{out}"
    );
    // Each exchange's REST and WebSocket (the simulator's, as configured).
    for ex in ["binance", "coinbase", "kraken"] {
        assert!(out.contains(&format!("ok    {ex:<10} ")), "{out}");
        assert!(out.contains(&format!("ok    {ex} ws ")), "{out}");
    }
    // A WebSocket that is not there is a failure.
    let (status, out, _) = cli_in(
        &stack,
        &[(
            "CANDLEPIPE_KRAKEN_WS_URL",
            "ws://127.0.0.1:1/v2".to_string(),
        )],
        &["check"],
    )
    .await;
    assert_eq!(status, Some(1), "{out}");
    assert!(
        out.contains("FAIL  kraken ws  ws://127.0.0.1:1/v2"),
        "{out}"
    );
}
