use super::*;
use crate::log::{RetryState, Settled, StartAt};

fn ev(id: &str) -> Arc<Event> {
    Arc::new(Event::new(id, "s", "t"))
}

fn spec(name: &str, overflow: Overflow) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        start: StartAt::Latest,
        overflow,
        durable_retries: false,
        max_in_flight: 1,
        order: Default::default(),
        ack_deadline: std::time::Duration::from_secs(60),
    }
}

async fn ids(c: &dyn Consumer, max: usize) -> Vec<String> {
    match c.poll(max).await {
        Some(Polled::Records(rs)) => rs.iter().map(|r| r.event.id.clone()).collect(),
        other => panic!("expected records, got {other:?}"),
    }
}

fn cfg(capacity: usize) -> MemoryConfig {
    MemoryConfig {
        capacity,
        max_bytes: 1 << 20,
    }
}

#[tokio::test]
async fn every_group_has_its_own_position() {
    let log = MemoryLog::new(cfg(10));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    let b = log.open(spec("b", Overflow::Shed)).await.expect("open");
    log.append(&[ev("1"), ev("2")]).await.expect("append");
    assert_eq!(ids(a.as_ref(), 1).await, ["1"]);
    assert_eq!(ids(b.as_ref(), 10).await, ["1", "2"]);
    assert_eq!(ids(a.as_ref(), 10).await, ["2"]);
}

#[tokio::test]
async fn a_lagging_group_sheds_without_holding_back_others() {
    let log = MemoryLog::new(cfg(3));
    let slow = log.open(spec("slow", Overflow::Shed)).await.expect("open");
    let fast = log.open(spec("fast", Overflow::Shed)).await.expect("open");
    for i in 0..5 {
        log.append(&[ev(&i.to_string())])
            .await
            .expect("never refused");
        assert_eq!(ids(fast.as_ref(), 10).await, [i.to_string()]);
    }
    assert_eq!(slow.stats().shed, 2);
    assert_eq!(
        ids(slow.as_ref(), 10).await,
        ["2", "3", "4"],
        "oldest shed first"
    );
}

#[tokio::test]
async fn a_blocking_group_pushes_back_all_or_nothing() {
    let log = MemoryLog::new(cfg(2));
    let slow = log.open(spec("slow", Overflow::Block)).await.expect("open");
    let fast = log.open(spec("fast", Overflow::Shed)).await.expect("open");
    log.append(&[ev("1")]).await.expect("room");
    assert!(matches!(
        log.append(&[ev("2"), ev("3")]).await,
        Err(AppendError::Full)
    ));
    assert_eq!(
        ids(fast.as_ref(), 10).await,
        ["1"],
        "nothing of the batch queued"
    );
    assert_eq!(ids(slow.as_ref(), 10).await, ["1"]);
    log.append(&[ev("2"), ev("3")]).await.expect("room again");
}

struct OnlyGroup(Vec<String>, &'static str);

impl Selector for OnlyGroup {
    fn groups(&self) -> &[String] {
        &self.0
    }
    fn select(&self, e: &Event, out: &mut Vec<usize>) {
        if e.id == self.1 {
            out.push(0);
        }
    }
}

#[tokio::test]
async fn a_selector_skips_groups_that_do_not_want_an_event() {
    let log = MemoryLog::new(cfg(10));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    let other = log.open(spec("other", Overflow::Shed)).await.expect("open");
    log.select(Some(Arc::new(OnlyGroup(vec!["a".into()], "x"))));
    log.append(&[ev("y"), ev("x")]).await.expect("append");
    assert_eq!(ids(a.as_ref(), 10).await, ["x"]);
    assert_eq!(
        ids(other.as_ref(), 10).await,
        ["y", "x"],
        "groups the selector does not name get everything"
    );
}

#[tokio::test]
async fn groups_opened_and_deleted_after_the_selector_are_routed() {
    let log = MemoryLog::new(cfg(10));
    log.select(Some(Arc::new(OnlyGroup(vec!["a".into()], "x"))));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    let other = log.open(spec("other", Overflow::Shed)).await.expect("open");
    log.append(&[ev("y"), ev("x")]).await.expect("append");
    assert_eq!(ids(a.as_ref(), 10).await, ["x"]);
    assert_eq!(ids(other.as_ref(), 10).await, ["y", "x"]);
    log.delete_group("a").await.expect("delete");
    log.delete_group("other").await.expect("delete");
    let again = log.open(spec("a", Overflow::Block)).await.expect("reopen");
    log.append(&[ev("x"), ev("z")]).await.expect("append");
    assert_eq!(
        ids(again.as_ref(), 10).await,
        ["x"],
        "the new group is routed"
    );
}

#[tokio::test]
async fn closing_drains_what_was_accepted() {
    let log = MemoryLog::new(cfg(10));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    log.append(&[ev("1")]).await.expect("append");
    log.close();
    assert!(matches!(
        log.append(&[ev("2")]).await,
        Err(AppendError::Closed)
    ));
    assert_eq!(
        ids(a.as_ref(), 10).await,
        ["1"],
        "accepted before the close"
    );
    assert!(a.poll(10).await.is_none(), "then the consumer ends");
}

#[tokio::test]
async fn a_closed_group_wakes_its_waiting_consumer() {
    let log = MemoryLog::new(cfg(10));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    let waiter = tokio::spawn(async move { a.poll(1).await.is_none() });
    tokio::task::yield_now().await;
    log.delete_group("a").await.expect("delete");
    assert!(waiter.await.expect("joined"));
}

#[tokio::test]
async fn paused_consumers_get_nothing_until_resumed() {
    let log = MemoryLog::new(cfg(10));
    let a = log.open(spec("a", Overflow::Shed)).await.expect("open");
    a.pause();
    log.append(&[ev("1")]).await.expect("append");
    let polled = tokio::time::timeout(std::time::Duration::from_millis(20), a.poll(1)).await;
    assert!(polled.is_err(), "paused");
    a.resume();
    let Some(Polled::Records(records)) = a.poll(1).await else {
        panic!("expected a record");
    };
    assert_eq!(records[0].event.id, "1");
    assert_eq!(a.stats().lag, Some(1), "read, not settled");
    let retry = RetryState {
        attempts: 1,
        not_before_ms: 0,
        last_dest: String::new(),
        last_status: Some(500),
    };
    let kept = a.settle(&records[0], Settle::Retry(retry)).outcome().await;
    assert!(
        matches!(kept, Ok(Settled::Kept)),
        "memory retries in memory"
    );
    assert_eq!(a.stats().lag, Some(1), "kept: still the caller's");
    let done = a.settle(&records[0], Settle::Ack).outcome().await;
    assert!(matches!(done, Ok(Settled::Done)));
    assert_eq!(a.stats().lag, Some(0));
}
