//! `candlepipe dlq list|replay|purge`: the operator's view of `CANDLEPIPE_DLQ`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use candlepipe_core::Subjects;
use candlepipe_worker::jobs::dead_letters::DeadLetters;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::connect;
use crate::times::format_instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Show dead letters: sequence, job subject, error, deliveries, failure times.
    List {
        /// At most this many (1 to 10,000), oldest first; when more follow, the table's
        /// last line gives the next `--from`.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
        /// From this sequence on (the next page: one past the last one shown).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Republish dead letters to their job subjects, then remove them from the DLQ.
    Replay {
        /// Every dead letter.
        #[arg(long, conflicts_with = "seqs")]
        all: bool,
        /// Sequence numbers (from `dlq list`).
        #[arg(required_unless_present = "all")]
        seqs: Vec<u64>,
    },
    /// Delete dead letters: every one, or those of a job subject or error code. Asks first
    /// on a terminal; elsewhere needs `--yes`.
    Purge {
        /// Only those of this job subject (e.g. candlepipe.jobs.fill.binance).
        #[arg(long)]
        subject: Option<String>,
        /// Only those that failed with this error code (e.g. upstream_error).
        #[arg(long)]
        code: Option<String>,
        /// Do it without asking.
        #[arg(long)]
        yes: bool,
    },
}

impl Args {
    /// Whether it prints JSON (`list --json`).
    pub fn json(&self) -> bool {
        matches!(self.action, Action::List { json: true, .. })
    }
}

/// A dead letter's series in the table: the first, and how many more.
fn series_column(series: &[String]) -> String {
    match series {
        [] => "-".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    }
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let nats = connect::nats(cfg, "candlepipe-dlq", Duration::ZERO).await?;
    let dlq = DeadLetters::open(async_nats::jetstream::new(nats), Subjects::new(&cfg.prefix))
        .await
        .map_err(|e| anyhow::anyhow!("opening the dead-letter stream: {e}"))?;
    match args.action {
        Action::List { limit, from, json } => {
            // One more than shown, to know whether more follow.
            let mut letters = dlq
                .page(from, limit as usize + 1)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let next = (letters.len() > limit as usize).then(|| {
                letters.truncate(limit as usize);
                letters.last().map_or(from, |l| l.seq + 1)
            });
            let mut out = std::io::stdout().lock();
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string(&letters)?);
            } else {
                let _ = writeln!(
                    out,
                    "{:>6}  {:<34} {:<20} {:>10}  {:<20}  {:<20}  {:<30}  message",
                    "seq",
                    "job subject",
                    "error",
                    "deliveries",
                    "first failure",
                    "last failure",
                    "series"
                );
                for l in &letters {
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<34} {:<20} {:>10}  {:<20}  {:<20}  {:<30}  {}",
                        l.seq,
                        l.subject,
                        l.code,
                        l.deliveries,
                        format_instant(l.first_failure),
                        format_instant(l.last_failure),
                        series_column(&l.series),
                        l.message
                    );
                }
                match next {
                    Some(next) => {
                        let _ = writeln!(
                            out,
                            "{} dead letter(s) shown; more from --from {next}",
                            letters.len()
                        );
                    }
                    None => {
                        let _ = writeln!(out, "{} dead letter(s)", letters.len());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Replay { all, seqs } => {
            let seqs = if all {
                dlq.sequences().await.map_err(|e| anyhow::anyhow!(e))?
            } else {
                seqs
            };
            let bar = ProgressBar::new(seqs.len() as u64).with_style(
                ProgressStyle::with_template("replaying {bar:40} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut failed = 0;
            for seq in &seqs {
                if let Err(e) = dlq.replay(*seq).await {
                    failed += 1;
                    // On stderr whether or not it is a terminal (the bar is hidden when not).
                    bar.suspend(|| eprintln!("seq {seq}: {e}"));
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!("{} replayed, {failed} failed", seqs.len() - failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Action::Purge { subject, code, yes } => purge(&dlq, subject, code, yes).await,
    }
}

/// `dlq purge`: what it would delete, asked about (or `--yes`), then deleted.
async fn purge(
    dlq: &DeadLetters,
    subject: Option<String>,
    code: Option<String>,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let everything = subject.is_none() && code.is_none();
    let mut chosen = Vec::new();
    for seq in dlq.sequences().await.map_err(|e| anyhow::anyhow!(e))? {
        let l = dlq.get(seq).await.map_err(|e| anyhow::anyhow!(e))?;
        let wanted = subject.as_ref().is_none_or(|s| *s == l.subject)
            && code.as_ref().is_none_or(|c| *c == l.code);
        if wanted {
            chosen.push(seq);
        }
    }
    if chosen.is_empty() {
        println!("purged 0 dead letter(s): none matches");
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        anyhow::ensure!(
            std::io::stdin().is_terminal(),
            "dlq purge would delete {} dead letter(s); add --yes to do it without a terminal",
            chosen.len()
        );
        eprint!("delete {} dead letter(s)? [y/N] ", chosen.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("purged 0 dead letter(s): not confirmed");
            return Ok(ExitCode::FAILURE);
        }
    }
    let n = if everything {
        dlq.purge().await.map_err(|e| anyhow::anyhow!(e))?
    } else {
        let mut n = 0;
        for seq in &chosen {
            dlq.remove(*seq).await.map_err(|e| anyhow::anyhow!(e))?;
            n += 1;
        }
        n
    };
    println!("purged {n} dead letter(s)");
    Ok(ExitCode::SUCCESS)
}
