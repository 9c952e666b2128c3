//! LLM commentary for one analysed symbol: the cache (until the described candle closes),
//! the route (primary or canary), the cluster budget and rate limits, the call with its
//! repair, and the accounting. Every way it can go without commentary ends in an
//! [`LlmNote`] that says why; the numbers never depend on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candlepipe_core::analysis::{LlmNote, LlmSkip};
use candlepipe_core::{now_ms, SeriesKey};
use candlepipe_llm::client::{estimate_tokens, most_tokens, MESSAGE_OVERHEAD_TOKENS};
use candlepipe_llm::commentary::{user_prompt, SYSTEM_PROMPT};
use candlepipe_llm::{commentary, LlmClient, LlmError, Prices, Provider, Usage};
use candlepipe_store::Records;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::llm_route::{Pick, RampSettings, Route};
use super::llm_spend::{Refused, Spend, SpendLimits};
use crate::context::Context;
use crate::error::BoxError;

#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// `None`: no LLM configured; analyses come without commentary.
    pub primary: Option<Provider>,
    pub canary: Option<Provider>,
    pub prices: Prices,
    pub limits: SpendLimits,
    pub max_tokens: u32,
    pub timeout: Duration,
    pub ramp: RampSettings,
}

/// What is cached per series and candle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    commentary: String,
    provider: String,
    model: String,
}

/// The candle a commentary describes.
pub struct About<'a> {
    pub series: &'a SeriesKey,
    pub last_t: i64,
    pub facts: serde_json::Value,
}

/// A call that produced no commentary.
struct Failed {
    skip: LlmSkip,
    message: String,
    usage: Usage,
    cost_usd: f64,
}

pub struct Commenter {
    settings: Arc<LlmSettings>,
    client: LlmClient,
    spend: Spend,
    route: Arc<Route>,
    records: Records,
}

/// The one mapping from a provider failure to the reason a producer sees.
/// The most one commentary can be billed: its prompt (system and `user` messages) at a
/// token per byte, and a repair.
fn most_billed(user: &str, max_tokens: u32) -> Usage {
    let prompt = most_tokens(SYSTEM_PROMPT) + most_tokens(user) + 2 * MESSAGE_OVERHEAD_TOKENS;
    Spend::worst_case(prompt, max_tokens)
}

fn skip_for(e: &LlmError) -> LlmSkip {
    match e {
        LlmError::RateLimited { .. } => LlmSkip::RateLimited,
        LlmError::InvalidOutput(_) | LlmError::NoChoices(_) => LlmSkip::InvalidOutput,
        LlmError::Status { .. }
        | LlmError::Timeout(_)
        | LlmError::Transport(_)
        | LlmError::Unreachable(_)
        | LlmError::BadResponse(_) => LlmSkip::Unavailable,
    }
}

fn skip_label(s: LlmSkip) -> &'static str {
    match s {
        LlmSkip::NotConfigured => "not_configured",
        LlmSkip::BudgetExceeded => "budget_exceeded",
        LlmSkip::RateLimited => "rate_limited",
        LlmSkip::Unavailable => "unavailable",
        LlmSkip::InvalidOutput => "invalid_output",
    }
}

impl Commenter {
    pub async fn start(
        ctx: &Context,
        settings: LlmSettings,
        records: Records,
        shutdown: CancellationToken,
    ) -> Result<Commenter, BoxError> {
        let settings = Arc::new(settings);
        let route = Route::start(
            ctx.redis.clone(),
            ctx.nats.clone(),
            ctx.settings.subjects.clone(),
            &ctx.settings.redis_prefix,
            settings.ramp.clone(),
            settings.canary.is_some(),
            shutdown,
        )
        .await?;
        for p in settings.primary.iter().chain(settings.canary.iter()) {
            if settings.prices.get(&p.model).is_none() {
                tracing::warn!(provider = %p.name, model = %p.model, "no price configured for this model: it will not be called (set CANDLEPIPE_LLM_PRICES or CANDLEPIPE_LLM_PRICES_FILE)");
            }
        }
        let spend = Spend::new(
            ctx.redis.clone(),
            &ctx.settings.redis_prefix,
            settings.limits.clone(),
        );
        metrics::gauge!("candlepipe_llm_daily_budget_usd").set(settings.limits.daily_budget_usd);
        let watched = spend.clone();
        tokio::spawn(async move {
            // Today's spend for dashboards, also across midnight when no call is made.
            loop {
                if let Ok(usd) = watched.spent_today().await {
                    metrics::gauge!("candlepipe_llm_spent_today_usd").set(usd);
                }
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        });
        Ok(Commenter {
            client: LlmClient::new(settings.timeout)?,
            spend,
            settings,
            route,
            records,
        })
    }

    fn cache_name(about: &About<'_>) -> String {
        let s = about.series;
        format!(
            "llm:c:{{{}:{}:{}}}:{}",
            s.exchange,
            s.symbol.token(),
            s.interval,
            about.last_t
        )
    }

    pub async fn comment(&self, about: &About<'_>) -> (Option<String>, LlmNote) {
        let Some(primary) = &self.settings.primary else {
            return skipped(
                None,
                LlmSkip::NotConfigured,
                "no LLM endpoint is configured (CANDLEPIPE_LLM_URL)",
            );
        };
        let name = Self::cache_name(about);
        match self.records.get::<Cached>(&name).await {
            Ok(Some(c)) => {
                metrics::counter!("candlepipe_llm_cache_hits_total").increment(1);
                self.spend.count_cache_hit(&c.provider, &c.model).await;
                let note = LlmNote {
                    provider: Some(c.provider),
                    model: Some(c.model),
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    cost_usd: 0.0,
                    cached: true,
                    error: None,
                    message: None,
                };
                return (Some(c.commentary), note);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "commentary cache unreadable; asking the LLM"),
        }
        let pick = self.route.pick();
        let first = match (pick, &self.settings.canary) {
            (Pick::Canary, Some(c)) => c,
            _ => primary,
        };
        let mut spent = (Usage::default(), 0.0);
        let mut result = self.call(first, &about.facts).await;
        if first != primary {
            if let Err(f) = &result {
                spent = (f.usage, f.cost_usd);
                if matches!(
                    f.skip,
                    LlmSkip::Unavailable | LlmSkip::InvalidOutput | LlmSkip::RateLimited
                ) {
                    tracing::info!(reason = %f.message, "canary failed; asking the primary");
                    result = self.call(primary, &about.facts).await;
                }
            }
        }
        match result {
            Ok((text, usage, cost_usd, provider)) => {
                let close = about.last_t + about.series.interval.millis();
                let ttl = Duration::from_millis(
                    (close - now_ms()).max(about.series.interval.millis().min(60_000)) as u64,
                );
                let cached = Cached {
                    commentary: text.clone(),
                    provider: provider.name.clone(),
                    model: provider.model.clone(),
                };
                if let Err(e) = self.records.put(&name, &cached, ttl).await {
                    tracing::warn!(error = %e, "commentary not cached");
                }
                let note = LlmNote {
                    provider: Some(provider.name.clone()),
                    model: Some(provider.model.clone()),
                    prompt_tokens: usage.prompt_tokens + spent.0.prompt_tokens,
                    completion_tokens: usage.completion_tokens + spent.0.completion_tokens,
                    cost_usd: cost_usd + spent.1,
                    cached: false,
                    error: None,
                    message: None,
                };
                (Some(text), note)
            }
            Err(f) => {
                let p = if f.usage == Usage::default() && spent.1 > 0.0 {
                    first
                } else {
                    primary
                };
                let mut note = skipped(Some(p), f.skip, &f.message).1;
                note.prompt_tokens = f.usage.prompt_tokens + spent.0.prompt_tokens;
                note.completion_tokens = f.usage.completion_tokens + spent.0.completion_tokens;
                note.cost_usd = f.cost_usd + spent.1;
                (None, note)
            }
        }
    }

    /// One commentary from `p` under the budget and limits; the route hears canary outcomes.
    async fn call<'p>(
        &self,
        p: &'p Provider,
        facts: &serde_json::Value,
    ) -> Result<(String, Usage, f64, &'p Provider), Failed> {
        let refuse = |skip, message: String| {
            metrics::counter!("candlepipe_llm_skipped_total", "reason" => skip_label(skip))
                .increment(1);
            Failed {
                skip,
                message,
                usage: Usage::default(),
                cost_usd: 0.0,
            }
        };
        let Some(price) = self.settings.prices.get(&p.model) else {
            return Err(refuse(
                LlmSkip::NotConfigured,
                format!(
                    "no price configured for model {} (CANDLEPIPE_LLM_PRICES or CANDLEPIPE_LLM_PRICES_FILE)",
                    p.model
                ),
            ));
        };
        let user = user_prompt(facts);
        // The rate limit is charged the usual estimate; money is reserved for the most.
        let prompt = estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(&user) + 16;
        let worst = most_billed(&user, self.settings.max_tokens);
        // As long as the call can take: two tries, and the wait for the rate limit.
        let hold =
            self.settings.timeout * 2 + self.settings.limits.max_wait + Duration::from_secs(2);
        let reservation = match self.spend.reserve(&worst, &price, hold).await {
            Ok(r) => r,
            Err(Refused::Budget) => {
                return Err(refuse(
                    LlmSkip::BudgetExceeded,
                    format!(
                        "the daily LLM budget of ${} is spent",
                        self.settings.limits.daily_budget_usd
                    ),
                ))
            }
            Err(e) => {
                return Err(refuse(
                    LlmSkip::Unavailable,
                    format!("cannot check the LLM budget: {e:?}"),
                ))
            }
        };
        if let Err(e) = self
            .spend
            .acquire_rate(&p.name, prompt + u64::from(self.settings.max_tokens))
            .await
        {
            self.spend.release(reservation).await;
            return Err(match e {
                Refused::Rate => refuse(
                    LlmSkip::RateLimited,
                    format!("{}'s RPM/TPM limit is reached", p.name),
                ),
                other => refuse(
                    LlmSkip::Unavailable,
                    format!("cannot check the LLM rate limit: {other:?}"),
                ),
            });
        }
        let started = Instant::now();
        let mut done = commentary(&self.client, p, facts, self.settings.max_tokens).await;
        // A call that may have been billed without our knowing what (timed out, broke off,
        // 5xx) is billed at its reservation, the worst case: the budget never errs low.
        if done.unknown {
            done.usage = worst;
        }
        let cost = price.cost_usd(&done.usage);
        let ok = done.text.is_ok();
        self.spend
            .settle(
                reservation,
                &super::llm_spend::Settled {
                    provider: &p.name,
                    model: &p.model,
                    usage: &done.usage,
                    cost_usd: cost,
                    ok,
                    at_worst: done.unknown,
                },
            )
            .await;
        if self.settings.canary.as_ref() == Some(p) && self.settings.primary.as_ref() != Some(p) {
            self.route.record_canary(ok).await;
        }
        let labels = [("provider", p.name.clone()), ("model", p.model.clone())];
        let outcome = match &done.text {
            Ok(_) => "ok",
            Err(e) => skip_label(skip_for(e)),
        };
        metrics::counter!("candlepipe_llm_requests_total", "provider" => p.name.clone(), "model" => p.model.clone(), "outcome" => outcome).increment(u64::from(done.calls));
        metrics::counter!("candlepipe_llm_tokens_total", "provider" => p.name.clone(), "model" => p.model.clone(), "kind" => "prompt").increment(done.usage.prompt_tokens);
        metrics::counter!("candlepipe_llm_tokens_total", "provider" => p.name.clone(), "model" => p.model.clone(), "kind" => "completion").increment(done.usage.completion_tokens);
        // Counters are integers: cost is counted in nano-dollars (1e-9 USD).
        metrics::counter!("candlepipe_llm_cost_nanodollars_total", &labels)
            .increment(super::llm_spend::nanos(cost).max(0) as u64);
        metrics::histogram!("candlepipe_llm_request_duration_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
        match done.text {
            Ok(text) => Ok((text, done.usage, cost, p)),
            Err(e) => {
                tracing::warn!(provider = %p.name, model = %p.model, error = %e, "LLM commentary failed");
                if let LlmError::RateLimited { retry_after } = &e {
                    self.spend
                        .pause(&p.name, retry_after.unwrap_or(Duration::from_secs(1)))
                        .await;
                }
                Err(Failed {
                    skip: skip_for(&e),
                    message: e.to_string(),
                    usage: done.usage,
                    cost_usd: cost,
                })
            }
        }
    }
}

fn skipped(p: Option<&Provider>, skip: LlmSkip, message: &str) -> (Option<String>, LlmNote) {
    (
        None,
        LlmNote {
            provider: p.map(|p| p.name.clone()),
            model: p.map(|p| p.model.clone()),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            cached: false,
            error: Some(skip),
            message: Some(message.to_string()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a provider whose tokenizer makes a token of every byte bills at most for one
    /// commentary with its repair: the prompt, then the prompt again with the first answer
    /// (at most `max_tokens`) and the repair request, each message with its overhead.
    fn billed_at_a_token_per_byte(user: &str, max_tokens: u32) -> Usage {
        let out = u64::from(max_tokens);
        let message = |text: &str| text.len() as u64 + MESSAGE_OVERHEAD_TOKENS;
        let first = message(SYSTEM_PROMPT) + message(user);
        let repair_request = message(&format!(
            "That answer was not usable: {}. Reply with only the JSON object {{\"commentary\": \"...\"}}.",
            "x".repeat(200)
        ));
        Usage {
            prompt_tokens: first + first + out + MESSAGE_OVERHEAD_TOKENS + repair_request,
            completion_tokens: 2 * out,
        }
    }

    #[test]
    fn the_reservation_covers_any_prompt_at_a_token_per_byte() {
        for digits in [0, 100, 1_000, 10_000, 100_000] {
            let user = format!("{{\"rsi14\":{}}}", "7".repeat(digits));
            for max_tokens in [1, 60, 300, 4_000] {
                let reserved = most_billed(&user, max_tokens);
                let billed = billed_at_a_token_per_byte(&user, max_tokens);
                assert!(
                    reserved.prompt_tokens >= billed.prompt_tokens
                        && reserved.completion_tokens >= billed.completion_tokens,
                    "{digits} digits, max_tokens {max_tokens}: reserved {reserved:?} < billed {billed:?}"
                );
            }
        }
    }
}
