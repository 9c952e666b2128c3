//! The JetStream streams and the consumers (one per fill lane, one for analyze), created
//! idempotently at worker start. `nats/` holds the same definitions for operators' tooling.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use candlepipe_core::subjects::{ANALYZE_GROUP, LEGACY_FILL_CONSUMER};
use candlepipe_core::{Lane, Subjects};

#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// JetStream replicas (3 on a cluster).
    pub replicas: usize,
    /// Window in which equal `Nats-Msg-Id`s are one job.
    pub dedup_window: Duration,
    /// Time a fill worker has before an unacked job is redelivered.
    pub ack_wait: Duration,
    /// Deliveries before a failing job is dead-lettered.
    pub max_deliver: i64,
    /// Jobs in flight across all fill workers, per lane.
    pub max_ack_pending: i64,
    /// Jobs the jobs stream holds at most, in all and per subject (lane), and its bytes at
    /// most: past them a new job is refused (ingest answers `unavailable`), so an outage of
    /// the fill workers cannot fill the disk.
    pub jobs_max_messages: i64,
    pub jobs_max_per_subject: i64,
    pub jobs_max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            dedup_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(2),
            max_deliver: 5,
            max_ack_pending: 1000,
            jobs_max_messages: 1_000_000,
            jobs_max_per_subject: 200_000,
            jobs_max_bytes: 1 << 30,
        }
    }
}

pub fn jobs_config(s: &Subjects, set: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.jobs_stream(),
        subjects: vec![s.jobs_all()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: set.replicas,
        duplicate_window: set.dedup_window,
        max_age: Duration::from_secs(24 * 3600),
        max_messages: set.jobs_max_messages,
        max_messages_per_subject: set.jobs_max_per_subject,
        max_bytes: set.jobs_max_bytes,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        ..Default::default()
    }
}

pub fn dlq_config(s: &Subjects, set: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.dlq_stream(),
        subjects: vec![s.dlq_all()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: set.replicas,
        max_age: Duration::from_secs(14 * 24 * 3600),
        max_messages: 1_000_000,
        ..Default::default()
    }
}

/// The consumer every fill process shares for `lane`. Lanes' filters do not overlap (each
/// names one subject), as a work-queue stream requires.
pub fn lane_consumer_config(
    s: &Subjects,
    set: &StreamSettings,
    lane: Lane,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(lane.consumer()),
        filter_subject: s.lane(lane),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: set.ack_wait,
        max_deliver: set.max_deliver,
        max_ack_pending: set.max_ack_pending,
        ..Default::default()
    }
}

/// Creates the consumer, or brings an existing one to `desired` (ack wait, deliveries,
/// backoff, pending limit), and checks that the server now holds exactly that: progress
/// acks and the retry policy are worked out from these settings, so a worker refuses to
/// start on a consumer that differs, saying which and how.
pub async fn ensure_consumer(
    stream: &stream::Stream,
    desired: consumer::pull::Config,
) -> Result<consumer::PullConsumer, async_nats::Error> {
    let name = desired.durable_name.clone().unwrap_or_default();
    let refuse = |why: String| -> async_nats::Error {
        format!(
            "consumer {name} of stream {}: {why}; delete it (`nats consumer rm {} {name}`) \
             or set the worker's settings to match it",
            stream.cached_info().config.name,
            stream.cached_info().config.name
        )
        .into()
    };
    let mut made: consumer::PullConsumer =
        stream.create_consumer(desired.clone()).await.map_err(|e| {
            refuse(format!(
                "cannot be created or brought to the configured settings ({e})"
            ))
        })?;
    let held = made.info().await?.config.clone();
    let differs = [
        (
            "filter_subject",
            held.filter_subject != desired.filter_subject,
        ),
        ("ack_wait", held.ack_wait != desired.ack_wait),
        ("max_deliver", held.max_deliver != desired.max_deliver),
        ("backoff", held.backoff != desired.backoff),
        (
            "max_ack_pending",
            held.max_ack_pending != desired.max_ack_pending,
        ),
    ];
    match differs.iter().find(|(_, d)| *d) {
        None => Ok(made),
        Some((field, _)) => Err(refuse(format!(
            "the server keeps {field} different from the configured one \
             (held: ack_wait {:?}, max_deliver {}, backoff {:?}, max_ack_pending {}, filter {:?})",
            held.ack_wait,
            held.max_deliver,
            held.backoff,
            held.max_ack_pending,
            held.filter_subject
        ))),
    }
}

/// Deletes the single fill consumer of earlier versions (`fill`, on `jobs.fill.>`), whose
/// filter overlaps every lane's: a work-queue stream refuses the lanes while it exists. Its
/// unacknowledged jobs stay in the stream and go to the lanes.
pub async fn remove_legacy_fill_consumer(stream: &stream::Stream) -> Result<(), async_nats::Error> {
    use async_nats::jetstream::context::ConsumerInfoErrorKind;
    match stream.consumer_info(LEGACY_FILL_CONSUMER).await {
        Ok(_) => {
            tracing::warn!(
                consumer = LEGACY_FILL_CONSUMER,
                "deleting the single fill consumer of an earlier version; stop older fill workers"
            );
            stream.delete_consumer(LEGACY_FILL_CONSUMER).await?;
            Ok(())
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The analyze consumer. Its filter (`jobs.analyze`) and the fill lanes'
/// (`jobs.fill.<exchange>[.bulk]`) do not overlap, as a work-queue stream requires.
pub fn analyze_consumer_config(s: &Subjects, set: &StreamSettings) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(ANALYZE_GROUP.to_string()),
        filter_subject: s.analyze_job(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: set.ack_wait,
        max_deliver: set.max_deliver,
        max_ack_pending: set.max_ack_pending,
        ..Default::default()
    }
}

/// Attempts at creating the streams at start; a cluster still placing replicas (or a slow
/// store) times a request out, and a worker should wait that out rather than exit.
const ENSURE_ATTEMPTS: u32 = 5;

/// Creates both streams if missing. Existing ones are left as operators configured them,
/// except a jobs stream without any size limit (as earlier versions made it), which gets
/// the configured limits. Retries with a growing pause (1, 2, 4, 8 s) before giving up with
/// the last error.
pub async fn ensure_streams(
    js: &jetstream::Context,
    s: &Subjects,
    set: &StreamSettings,
) -> Result<stream::Stream, async_nats::Error> {
    let mut attempt = 1;
    loop {
        let created = async {
            let mut jobs = js.get_or_create_stream(jobs_config(s, set)).await?;
            let held = jobs.info().await?.config.clone();
            if held.max_messages < 0 && held.max_bytes < 0 && held.max_messages_per_subject < 0 {
                let limited = stream::Config {
                    max_messages: set.jobs_max_messages,
                    max_messages_per_subject: set.jobs_max_per_subject,
                    max_bytes: set.jobs_max_bytes,
                    discard: stream::DiscardPolicy::New,
                    discard_new_per_subject: true,
                    ..held
                };
                js.update_stream(limited).await?;
                tracing::info!(stream = %s.jobs_stream(), "the jobs stream had no size limits; set them");
            }
            js.get_or_create_stream(dlq_config(s, set)).await?;
            Ok::<_, async_nats::Error>(jobs)
        }
        .await;
        match created {
            Ok(jobs) => return Ok(jobs),
            Err(e) if attempt < ENSURE_ATTEMPTS => {
                let pause = std::time::Duration::from_secs(1 << (attempt - 1));
                tracing::warn!(error = %e, attempt, ?pause, "JetStream streams not ready; retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_json::from_str(text).expect("nats/ definition parses as the API's config")
    }

    /// The definitions in `nats/` are what the workers create.
    #[test]
    fn nats_directory_matches_the_code() {
        let (s, set) = (Subjects::default(), StreamSettings::default());
        let jobs: stream::Config = file(include_str!(
            "../../../../nats/streams/CANDLEPIPE_JOBS.json"
        ));
        let code = jobs_config(&s, &set);
        assert_eq!(
            (
                &jobs.name,
                &jobs.subjects,
                jobs.retention,
                jobs.storage,
                jobs.duplicate_window,
                jobs.max_age,
                jobs.num_replicas
            ),
            (
                &code.name,
                &code.subjects,
                code.retention,
                code.storage,
                code.duplicate_window,
                code.max_age,
                code.num_replicas
            )
        );
        assert_eq!(
            (
                jobs.max_messages,
                jobs.max_messages_per_subject,
                jobs.max_bytes,
                jobs.discard,
                jobs.discard_new_per_subject
            ),
            (
                code.max_messages,
                code.max_messages_per_subject,
                code.max_bytes,
                code.discard,
                code.discard_new_per_subject
            )
        );
        let dlq: stream::Config =
            file(include_str!("../../../../nats/streams/CANDLEPIPE_DLQ.json"));
        let code = dlq_config(&s, &set);
        assert_eq!(
            (
                &dlq.name,
                &dlq.subjects,
                dlq.retention,
                dlq.storage,
                dlq.max_age,
                dlq.max_messages
            ),
            (
                &code.name,
                &code.subjects,
                code.retention,
                code.storage,
                code.max_age,
                code.max_messages
            )
        );
        let consumer_file = |name: &str| {
            let path = format!(
                "{}/../../nats/consumers/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let consumers = Lane::all()
            .map(|lane| (lane.consumer(), lane_consumer_config(&s, &set, lane)))
            .chain([(ANALYZE_GROUP.to_string(), analyze_consumer_config(&s, &set))]);
        for (name, code) in consumers {
            let file_text = consumer_file(&name);
            let fill: consumer::pull::Config = file(&file_text);
            assert_eq!(
                (
                    &fill.durable_name,
                    &fill.filter_subject,
                    fill.ack_policy,
                    fill.ack_wait,
                    fill.max_deliver,
                    fill.max_ack_pending
                ),
                (
                    &code.durable_name,
                    &code.filter_subject,
                    code.ack_policy,
                    code.ack_wait,
                    code.max_deliver,
                    code.max_ack_pending
                )
            );
        }
        let filters: Vec<String> = Lane::all()
            .map(|l| s.lane(l))
            .chain([s.analyze_job()])
            .collect();
        let unique: std::collections::BTreeSet<&String> = filters.iter().collect();
        assert_eq!(unique.len(), filters.len(), "filters overlap: {filters:?}");
        assert!(filters.iter().all(|f| !f.contains(['*', '>'])));
    }
}
