//! The exchange budget's priorities, against a real redis-server: live work before bulk
//! work, admission against the deadline, and nothing for a job nobody waits for.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use candlepipe_store::Redis;
use candlepipe_testkit::RedisServer;
use candlepipe_worker::budget::gcra::{self, Grant, LaneKeys, Rate, Turn};

async fn redis(server: &RedisServer) -> Redis {
    let client = redis::Client::open(server.url()).unwrap();
    Redis::Single(redis::aio::ConnectionManager::new(client).await.unwrap())
}

fn keys() -> LaneKeys {
    LaneKeys {
        bucket: "t:rl:{x}".into(),
        pause: "t:rl:{x}:pause".into(),
        waiting: "t:rl:{x}:waiting".into(),
        bulk: "t:rl:{x}:bulk".into(),
    }
}

/// One request a second: every grant makes the next wait about a second.
const RATE: Rate = Rate {
    interval_us: 1_000_000,
    tolerance_us: 0,
};
const LONG: Duration = Duration::from_secs(60);
const MARGIN: Duration = Duration::from_millis(100);

/// Admits live job `job`, whose producer waits `remaining`; with `take`, its turn too when
/// it is free at once.
async fn admit(r: &Redis, job: &str, remaining: Duration, take: bool) -> gcra::Admission {
    gcra::admit(r, &keys(), RATE, job, (remaining, MARGIN), take)
        .await
        .unwrap()
}

async fn turn(r: &Redis, t: Turn<'_>) -> Grant {
    gcra::acquire_turn(r, &keys(), RATE, 1, t).await.unwrap()
}

#[tokio::test]
async fn bulk_waits_while_a_live_job_waits_and_never_delays_one() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    // Nobody waits: bulk goes.
    assert_eq!(turn(&r, Turn::Bulk).await, Grant::Now);
    // A live job admitted right after a bulk permit goes at once, not a second later.
    let a = admit(&r, "job-a", LONG, false).await;
    assert!(a.admitted);
    assert_eq!(turn(&r, Turn::Live("job-a")).await, Grant::Now);
    // That borrowing happens once: the next live job waits its interval.
    admit(&r, "job-b", LONG, false).await;
    assert!(matches!(
        turn(&r, Turn::Live("job-b")).await,
        Grant::Wait(_)
    ));
    // While job-b waits, bulk is refused even once the interval has passed.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(matches!(turn(&r, Turn::Bulk).await, Grant::Wait(_)));
    assert_eq!(turn(&r, Turn::Live("job-b")).await, Grant::Now);
    gcra::release(&r, &keys(), "job-a").await.unwrap();
    gcra::release(&r, &keys(), "job-b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(turn(&r, Turn::Bulk).await, Grant::Now);
}

#[tokio::test]
async fn admission_takes_the_first_turn_only_when_it_is_free_at_once() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut r.clone())
        .await
        .unwrap();
    let redis_ms = secs * 1000 + micros / 1000;
    // Nobody waits and the bucket is empty: the turn is taken with the admission, at
    // Redis's time, and the next request waits its interval.
    let a = admit(&r, "job-a", LONG, true).await;
    assert!(a.admitted);
    let at = a.turn_at.expect("a free turn taken with the admission");
    assert!(
        (redis_ms..redis_ms + 1_000).contains(&at),
        "{at} vs {redis_ms}"
    );
    assert!(matches!(turn(&r, Turn::Upkeep).await, Grant::Wait(_)));
    // Admitted again (another producer of job-a): no second turn.
    let again = admit(&r, "job-a", LONG, true).await;
    assert!(again.admitted);
    assert_eq!(again.turn_at, None);
    // job-a still waits: job-b is admitted behind it, without a turn, whatever it asks.
    let b = admit(&r, "job-b", LONG, true).await;
    assert!(b.admitted);
    assert_eq!(b.turn_at, None);
    // Given back, the turn is free again; asked without `take`, admission takes none.
    gcra::release(&r, &keys(), "job-a").await.unwrap();
    gcra::release(&r, &keys(), "job-b").await.unwrap();
    gcra::give_back(&r, &keys(), RATE).await.unwrap();
    let c = admit(&r, "job-c", LONG, false).await;
    assert_eq!((c.admitted, c.turn_at), (true, None));
    gcra::release(&r, &keys(), "job-c").await.unwrap();
    // While paused, no turn is taken.
    gcra::pause(&r, &keys().pause, Duration::from_secs(5), 0)
        .await
        .unwrap();
    let d = admit(&r, "job-d", LONG, true).await;
    assert_eq!(d.turn_at, None);
    gcra::release(&r, &keys(), "job-d").await.unwrap();
    redis::cmd("DEL")
        .arg(&keys().pause)
        .query_async::<()>(&mut r.clone())
        .await
        .unwrap();
    // The bucket free again: the one turn given back is there to take.
    assert_eq!(turn(&r, Turn::Upkeep).await, Grant::Now);
}

#[tokio::test]
async fn a_job_whose_producers_left_gets_no_turn() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    assert_eq!(
        turn(&r, Turn::Live("never-admitted")).await,
        Grant::NoWaiter
    );
    let a = admit(&r, "short", Duration::from_millis(200), false).await;
    assert!(
        a.admitted,
        "the bucket is free: admitted however short the wait"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(turn(&r, Turn::Live("short")).await, Grant::NoWaiter);
}

#[tokio::test]
async fn admission_refuses_a_turn_past_the_deadline_and_says_when() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    // Five live jobs wait for one request a second.
    for i in 0..5 {
        let id = format!("job-{i}");
        let a = admit(&r, &id, LONG, false).await;
        assert!(a.admitted, "{id}");
    }
    // A sixth that waits 3 s would get its turn in about 5 s: refused.
    let late = admit(&r, "job-6", Duration::from_secs(3), false).await;
    assert!(!late.admitted);
    assert!(
        (4_500..=5_500).contains(&(late.wait.as_millis() as u64)),
        "{:?}",
        late.wait
    );
    // One that waits 10 s is admitted; and a job already waiting is admitted again.
    assert!(
        admit(&r, "job-7", Duration::from_secs(10), false)
            .await
            .admitted
    );
    assert!(
        admit(&r, "job-0", Duration::from_millis(10), false)
            .await
            .admitted
    );
}

#[tokio::test]
async fn a_live_job_set_aside_lets_the_bulk_job_it_waits_for_go_first() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    let a = admit(&r, "live", LONG, false).await;
    assert!(a.admitted);
    assert!(matches!(turn(&r, Turn::Bulk).await, Grant::Wait(_)));
    // The live job waits for the series the bulk job holds: it steps aside.
    let score = gcra::set_aside(&r, &keys(), "live").await.unwrap();
    assert!(score.is_some());
    assert_eq!(turn(&r, Turn::Bulk).await, Grant::Now);
    // Back in the set, it is live work again and bulk waits for it.
    gcra::put_back(&r, &keys(), "live", score.unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(matches!(turn(&r, Turn::Bulk).await, Grant::Wait(_)));
    assert_eq!(turn(&r, Turn::Live("live")).await, Grant::Now);
    assert_eq!(gcra::set_aside(&r, &keys(), "gone").await.unwrap(), None);
}

#[tokio::test]
async fn a_turn_given_back_is_there_again_for_the_next_job() {
    let server = RedisServer::start();
    let r = redis(&server).await;
    for job in ["job-a", "job-b"] {
        let a = admit(&r, job, LONG, false).await;
        assert!(a.admitted);
    }
    // job-a takes the turn ahead of its request, then finds its series fresh and gives it
    // back: job-b goes at once instead of a second later.
    assert_eq!(turn(&r, Turn::Live("job-a")).await, Grant::Now);
    assert!(matches!(
        turn(&r, Turn::Live("job-b")).await,
        Grant::Wait(_)
    ));
    gcra::give_back(&r, &keys(), RATE).await.unwrap();
    assert_eq!(turn(&r, Turn::Live("job-b")).await, Grant::Now);
    // A turn given back never lends one ahead: after job-b's turn the next one waits, and
    // two turns given back (one more than was taken since) leave one turn, not two.
    assert!(matches!(
        turn(&r, Turn::Live("job-a")).await,
        Grant::Wait(_)
    ));
    gcra::give_back(&r, &keys(), RATE).await.unwrap();
    gcra::give_back(&r, &keys(), RATE).await.unwrap();
    assert_eq!(turn(&r, Turn::Live("job-a")).await, Grant::Now);
    assert!(matches!(
        turn(&r, Turn::Live("job-b")).await,
        Grant::Wait(_)
    ));
}
