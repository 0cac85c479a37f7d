//! The dynamic batcher: a queue actor that owns the waiting requests and hands batches to a
//! runner. The HTTP layer only talks to it through [`BatcherHandle::submit`].
//!
//! Rules, each covered by a test on tokio's paused clock:
//! - a batch never holds more than `max_batch_size` samples (one request larger than that runs
//!   alone);
//! - a batch leaves as soon as the queue holds `max_batch_size` samples or one of the preferred
//!   sizes, and otherwise when the oldest waiting request has waited `max_queue_delay`, timed
//!   from that request's arrival (not from when a worker became free, TorchServe's bug);
//! - the queue holds at most `queue_capacity` samples: beyond that a request is refused at
//!   once ([`Rejected::QueueFull`]);
//! - a request past its deadline is answered [`Rejected::DeadlineExceeded`] and never computed;
//! - a request whose caller went away (its future dropped) is dropped before compute;
//! - priority 1 is the most urgent: batches are filled from the most urgent level first;
//! - at most `max_concurrent_batches` batches run at once; while all run, requests keep
//!   queueing, so the next batch is fuller.
//!
//! [`Batcher::close`] starts the drain: what is queued runs without waiting for the delay,
//! later submissions are refused ([`Rejected::ShuttingDown`]), and [`Batcher::join`] returns
//! once the last batch has answered.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::batching::BatchConfig;

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("the queue is full ({capacity} samples waiting)")]
    QueueFull { capacity: usize },
    #[error("the request's deadline passed before it was computed")]
    DeadlineExceeded,
    #[error("priority {given} is out of range 1..={levels}")]
    BadPriority { given: u8, levels: u8 },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("inference failed: {0}")]
    Failed(String),
}

/// Computes batches. `run` must not borrow `self` in the future it returns: batches run as
/// tasks of their own.
pub trait Runner: Send + Sync + 'static {
    type Item: Send + 'static;
    type Output: Send + 'static;
    /// Samples in one item (a request may carry several).
    fn size(item: &Self::Item) -> usize;
    /// One output per item, in order.
    fn run(
        &self,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = Vec<Result<Self::Output, String>>> + Send + 'static;
}

/// Where the batcher reports what happens, as it happens (metrics, tests).
pub trait Observer: Send + Sync + 'static {
    fn queue_depth(&self, _samples: usize) {}
    fn batch(&self, _samples: usize, _requests: usize) {}
    fn batch_done(&self, _seconds: f64) {}
    fn rejected(&self, _why: &Rejected) {}
    fn client_gone(&self) {}
}

struct Pending<R: Runner> {
    item: R::Item,
    size: usize,
    arrived: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<R::Output, Rejected>>,
}

enum Command<R: Runner> {
    Submit(u8, Pending<R>),
    Close,
}

/// Submits requests to a batcher; cheap to clone.
pub struct BatcherHandle<R: Runner> {
    tx: mpsc::UnboundedSender<Command<R>>,
    config: Arc<BatchConfig>,
    depth: Arc<AtomicUsize>,
}

impl<R: Runner> Clone for BatcherHandle<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            config: self.config.clone(),
            depth: self.depth.clone(),
        }
    }
}

/// Options of one submission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submit {
    /// 1 = most urgent; `None` = the lowest level.
    pub priority: Option<u8>,
    /// `None` = now + the configured request timeout.
    pub deadline: Option<Instant>,
}

impl<R: Runner> BatcherHandle<R> {
    /// Samples waiting now.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues `item` and waits for its result. Dropping the returned future withdraws the
    /// request: it will not be computed.
    pub async fn submit(&self, item: R::Item, options: Submit) -> Result<R::Output, Rejected> {
        let levels = self.config.priority_levels;
        let priority = options.priority.unwrap_or(levels);
        if priority == 0 || priority > levels {
            return Err(Rejected::BadPriority {
                given: priority,
                levels,
            });
        }
        let arrived = Instant::now();
        let deadline = options
            .deadline
            .unwrap_or(arrived + Duration::from_millis(self.config.request_timeout_ms));
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            size: R::size(&item),
            item,
            arrived,
            deadline,
            reply,
        };
        if self
            .tx
            .send(Command::Submit(priority - 1, pending))
            .is_err()
        {
            return Err(Rejected::ShuttingDown);
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Rejected::ShuttingDown),
            Err(_) => Err(Rejected::DeadlineExceeded),
        }
    }
}

/// The running actor.
pub struct Batcher {
    task: JoinHandle<()>,
    close: Box<dyn Fn() + Send + Sync>,
}

impl Batcher {
    pub fn spawn<R: Runner>(
        config: BatchConfig,
        runner: R,
        observer: Arc<dyn Observer>,
    ) -> (Self, BatcherHandle<R>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let config = Arc::new(config);
        let actor = Actor {
            levels: (0..config.priority_levels)
                .map(|_| VecDeque::new())
                .collect(),
            queued: 0,
            permits: Arc::new(Semaphore::new(config.max_concurrent_batches)),
            config: config.clone(),
            runner: Arc::new(runner),
            observer,
            depth: depth.clone(),
            rx,
            open: true,
        };
        let task = tokio::spawn(actor.run());
        let closer = tx.clone();
        let close = Box::new(move || {
            let _ = closer.send(Command::Close);
        });
        (Self { task, close }, BatcherHandle { tx, config, depth })
    }

    /// Stops taking requests and runs what is queued without waiting for the delay.
    pub fn close(&self) {
        (self.close)();
    }

    /// Closes, then waits until every queued request has been answered.
    pub async fn join(self) {
        self.close();
        let _ = self.task.await;
    }
}

struct Actor<R: Runner> {
    config: Arc<BatchConfig>,
    runner: Arc<R>,
    observer: Arc<dyn Observer>,
    /// One queue per priority level, most urgent first.
    levels: Vec<VecDeque<Pending<R>>>,
    /// Samples in `levels`.
    queued: usize,
    permits: Arc<Semaphore>,
    depth: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<Command<R>>,
    /// False once closed: then the queue drains without waiting.
    open: bool,
}

impl<R: Runner> Actor<R> {
    async fn run(mut self) {
        loop {
            self.prune(Instant::now());
            let ready = self.ready(Instant::now());
            if !self.open && self.queued == 0 {
                break;
            }
            let wakeup = self.next_wakeup();
            tokio::select! {
                biased;
                permit = self.permits.clone().acquire_owned(), if ready => {
                    let permit = permit.expect("the semaphore is never closed");
                    self.dispatch(permit);
                }
                message = self.rx.recv(), if self.open => match message {
                    Some(Command::Submit(level, pending)) => self.enqueue(level, pending),
                    Some(Command::Close) | None => self.open = false,
                },
                () = sleep_until(wakeup), if !ready => {}
            }
        }
        // Wait for the batches still running: each holds a permit until it has answered.
        let all = self.config.max_concurrent_batches as u32;
        let _ = self.permits.acquire_many(all).await;
    }

    fn enqueue(&mut self, level: u8, pending: Pending<R>) {
        if self.queued + pending.size > self.config.queue_capacity && self.queued > 0 {
            let why = Rejected::QueueFull {
                capacity: self.config.queue_capacity,
            };
            self.observer.rejected(&why);
            let _ = pending.reply.send(Err(why));
            return;
        }
        self.queued += pending.size;
        self.levels[level as usize].push_back(pending);
        self.publish_depth();
    }

    /// Removes requests whose caller left or whose deadline passed.
    fn prune(&mut self, now: Instant) {
        let mut removed = 0;
        for level in &mut self.levels {
            let before: usize = level.iter().map(|p| p.size).sum();
            let mut kept = VecDeque::with_capacity(level.len());
            for pending in level.drain(..) {
                if pending.reply.is_closed() {
                    self.observer.client_gone();
                } else if pending.deadline <= now {
                    self.observer.rejected(&Rejected::DeadlineExceeded);
                    let _ = pending.reply.send(Err(Rejected::DeadlineExceeded));
                } else {
                    kept.push_back(pending);
                }
            }
            removed += before - kept.iter().map(|p| p.size).sum::<usize>();
            *level = kept;
        }
        if removed > 0 {
            self.queued -= removed;
            self.publish_depth();
        }
    }

    /// Whether a batch should leave now (given a free worker).
    fn ready(&self, now: Instant) -> bool {
        if self.queued == 0 {
            return false;
        }
        if !self.open || self.queued >= self.config.max_batch_size {
            return true;
        }
        if self
            .config
            .preferred_batch_sizes
            .iter()
            .any(|&p| p <= self.queued)
        {
            return true;
        }
        self.oldest_arrival()
            .is_some_and(|t| t + self.config.max_queue_delay() <= now)
    }

    /// The next moment something changes without a new message: the oldest request's delay
    /// runs out, or a deadline passes.
    fn next_wakeup(&self) -> Option<Instant> {
        let delay = self
            .oldest_arrival()
            .map(|t| t + self.config.max_queue_delay());
        let deadline = self.levels.iter().flatten().map(|p| p.deadline).min();
        [delay, deadline].into_iter().flatten().min()
    }

    fn oldest_arrival(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|l| l.front())
            .map(|p| p.arrived)
            .min()
    }

    /// The batch size to aim for: everything up to the maximum, or, when less is queued and
    /// the delay has not run out, the largest preferred size that is reachable.
    fn target(&self) -> usize {
        let max = self.config.max_batch_size;
        if self.queued >= max || !self.open {
            return max;
        }
        let now = Instant::now();
        let delay_over = self
            .oldest_arrival()
            .is_some_and(|t| t + self.config.max_queue_delay() <= now);
        if delay_over {
            return max;
        }
        self.config
            .preferred_batch_sizes
            .iter()
            .copied()
            .filter(|&p| p <= self.queued)
            .max()
            .unwrap_or(max)
    }

    fn dispatch(&mut self, permit: OwnedSemaphorePermit) {
        let target = self.target();
        let mut batch = Vec::new();
        let mut size = 0;
        'levels: for level in &mut self.levels {
            while let Some(front) = level.front() {
                let fits = size + front.size <= target;
                if !fits && size > 0 {
                    break 'levels;
                }
                let pending = level.pop_front().expect("front exists");
                size += pending.size;
                batch.push(pending);
                if !fits || size >= target {
                    break 'levels;
                }
            }
        }
        self.queued -= size;
        self.publish_depth();
        self.observer.batch(size, batch.len());
        let (items, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.item, p.reply)).unzip();
        let work = self.runner.run(items);
        let observer = self.observer.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outputs = work.await;
            observer.batch_done(started.elapsed().as_secs_f64());
            let mut outputs = outputs.into_iter();
            for reply in replies {
                let result = match outputs.next() {
                    Some(Ok(output)) => Ok(output),
                    Some(Err(message)) => Err(Rejected::Failed(message)),
                    None => Err(Rejected::Failed(
                        "the runner returned too few outputs".into(),
                    )),
                };
                let _ = reply.send(result);
            }
            drop(permit);
        });
    }

    fn publish_depth(&self) {
        self.depth.store(self.queued, Ordering::Relaxed);
        self.observer.queue_depth(self.queued);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records each batch (the items' ids) and takes `compute` of (paused) time per batch.
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        compute: Duration,
        running: Arc<AtomicUsize>,
        most_running: Arc<AtomicUsize>,
    }

    /// An item: (id, samples).
    impl Runner for Recorder {
        type Item = (u32, usize);
        type Output = u32;
        fn size(item: &Self::Item) -> usize {
            item.1
        }
        fn run(
            &self,
            items: Vec<Self::Item>,
        ) -> impl Future<Output = Vec<Result<u32, String>>> + Send + 'static {
            let ids: Vec<u32> = items.iter().map(|i| i.0).collect();
            self.batches.lock().unwrap().push(ids.clone());
            let compute = self.compute;
            let running = self.running.clone();
            let most = self.most_running.clone();
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(compute).await;
                running.fetch_sub(1, Ordering::SeqCst);
                ids.into_iter().map(|i| Ok(i * 10)).collect()
            }
        }
    }

    struct Setup {
        batcher: Batcher,
        handle: BatcherHandle<Recorder>,
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        most_running: Arc<AtomicUsize>,
        observer: Arc<Counting>,
    }

    #[derive(Default)]
    struct Counting {
        gone: AtomicUsize,
        expired: AtomicUsize,
        full: AtomicUsize,
    }
    impl Observer for Counting {
        fn client_gone(&self) {
            self.gone.fetch_add(1, Ordering::SeqCst);
        }
        fn rejected(&self, why: &Rejected) {
            match why {
                Rejected::DeadlineExceeded => self.expired.fetch_add(1, Ordering::SeqCst),
                Rejected::QueueFull { .. } => self.full.fetch_add(1, Ordering::SeqCst),
                _ => 0,
            };
        }
    }

    fn setup(config: BatchConfig, compute_ms: u64) -> Setup {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let most_running = Arc::new(AtomicUsize::new(0));
        let observer = Arc::new(Counting::default());
        let runner = Recorder {
            batches: batches.clone(),
            compute: Duration::from_millis(compute_ms),
            running: Arc::new(AtomicUsize::new(0)),
            most_running: most_running.clone(),
        };
        let (batcher, handle) = Batcher::spawn(config, runner, observer.clone());
        Setup {
            batcher,
            handle,
            batches,
            most_running,
            observer,
        }
    }

    fn config(max: usize, delay_ms: u64) -> BatchConfig {
        BatchConfig {
            max_batch_size: max,
            max_queue_delay_ms: delay_ms,
            ..BatchConfig::default()
        }
    }

    /// Submits `id` (one sample) from a task of its own; the task returns the answer and the
    /// time it took.
    fn spawn_submit(
        handle: &BatcherHandle<Recorder>,
        id: u32,
        size: usize,
        options: Submit,
    ) -> JoinHandle<(Result<u32, Rejected>, Duration)> {
        let handle = handle.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let result = handle.submit((id, size), options).await;
            (result, start.elapsed())
        })
    }

    async fn settle() {
        // Lets spawned tasks reach the actor without moving the paused clock.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_leaves_at_once_and_never_exceeds_the_maximum() {
        let s = setup(config(4, 1000), 10);
        let tasks: Vec<_> = (0..10)
            .map(|i| spawn_submit(&s.handle, i, 1, Submit::default()))
            .collect();
        settle().await;
        let first = tasks.into_iter().next().unwrap().await.unwrap();
        assert_eq!(first.0, Ok(0));
        // The first batch was full: it did not wait for the 1 s delay, only for compute.
        assert_eq!(first.1, Duration::from_millis(10));
        let batches = s.batches.lock().unwrap().clone();
        assert_eq!(batches[0], vec![0, 1, 2, 3]);
        assert!(batches.iter().all(|b| b.len() <= 4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_counts_from_the_first_request_s_arrival() {
        let s = setup(config(8, 100), 10);
        let first = spawn_submit(&s.handle, 1, 1, Submit::default());
        settle().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = spawn_submit(&s.handle, 2, 1, Submit::default());
        let (r1, t1) = first.await.unwrap();
        let (r2, t2) = second.await.unwrap();
        assert_eq!((r1, r2), (Ok(10), Ok(20)));
        // Both left together 100 ms after the first arrived (not after the second).
        assert_eq!(t1, Duration::from_millis(110));
        assert_eq!(t2, Duration::from_millis(50));
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![1, 2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_runs_while_the_worker_is_busy() {
        // A request arriving during a batch's compute has its delay counted from its arrival:
        // when the worker frees up after the delay, it leaves at once.
        let s = setup(config(8, 20), 100);
        let a = spawn_submit(&s.handle, 1, 1, Submit::default());
        settle().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let b = spawn_submit(&s.handle, 2, 1, Submit::default());
        let (_, ta) = a.await.unwrap();
        let (_, tb) = b.await.unwrap();
        assert_eq!(ta, Duration::from_millis(120));
        // b arrived at 30, the worker freed at 120, and b's delay ended at 50: it left at 120.
        assert_eq!(tb, Duration::from_millis(190));
    }

    #[tokio::test(start_paused = true)]
    async fn a_preferred_size_leaves_without_waiting() {
        let cfg = BatchConfig {
            preferred_batch_sizes: vec![2],
            ..config(8, 1000)
        };
        let s = setup(cfg, 10);
        let a = spawn_submit(&s.handle, 1, 1, Submit::default());
        let b = spawn_submit(&s.handle, 2, 1, Submit::default());
        let (_, ta) = a.await.unwrap();
        assert_eq!(b.await.unwrap().0, Ok(20));
        assert_eq!(ta, Duration::from_millis(10));
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![1, 2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once() {
        let cfg = BatchConfig {
            queue_capacity: 3,
            ..config(8, 1000)
        };
        let s = setup(cfg, 10);
        let held: Vec<_> = (0..3)
            .map(|i| spawn_submit(&s.handle, i, 1, Submit::default()))
            .collect();
        settle().await;
        let (refused, waited) = spawn_submit(&s.handle, 9, 1, Submit::default())
            .await
            .unwrap();
        assert_eq!(refused, Err(Rejected::QueueFull { capacity: 3 }));
        assert_eq!(waited, Duration::ZERO);
        for task in held {
            assert!(task.await.unwrap().0.is_ok());
        }
        assert_eq!(s.observer.full.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_request_is_answered_and_never_computed() {
        let s = setup(config(8, 200), 10);
        let soon = Instant::now() + Duration::from_millis(50);
        let doomed = spawn_submit(
            &s.handle,
            1,
            1,
            Submit {
                deadline: Some(soon),
                ..Submit::default()
            },
        );
        let patient = spawn_submit(&s.handle, 2, 1, Submit::default());
        let (r, t) = doomed.await.unwrap();
        assert_eq!(r, Err(Rejected::DeadlineExceeded));
        assert_eq!(t, Duration::from_millis(50));
        assert_eq!(patient.await.unwrap().0, Ok(20));
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_caller_left_is_dropped_before_compute() {
        let s = setup(config(8, 100), 10);
        let gone = spawn_submit(&s.handle, 1, 1, Submit::default());
        let stays = spawn_submit(&s.handle, 2, 1, Submit::default());
        settle().await;
        gone.abort();
        assert_eq!(stays.await.unwrap().0, Ok(20));
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![2]]);
        assert_eq!(s.observer.gone.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_requests_go_first() {
        let cfg = BatchConfig {
            priority_levels: 2,
            ..config(2, 100)
        };
        let s = setup(cfg, 10);
        let low: Vec<_> = (0..3)
            .map(|i| spawn_submit(&s.handle, i, 1, Submit::default()))
            .collect();
        settle().await;
        let urgent = spawn_submit(
            &s.handle,
            7,
            1,
            Submit {
                priority: Some(1),
                ..Submit::default()
            },
        );
        // The first full batch [0, 1] left at once; the urgent request leads the next one.
        assert_eq!(urgent.await.unwrap().0, Ok(70));
        for t in low {
            assert!(t.await.unwrap().0.is_ok());
        }
        let batches = s.batches.lock().unwrap().clone();
        assert_eq!(batches, vec![vec![0, 1], vec![7, 2]]);
        let bad = s
            .handle
            .submit(
                (9, 1),
                Submit {
                    priority: Some(3),
                    ..Submit::default()
                },
            )
            .await;
        assert_eq!(
            bad,
            Err(Rejected::BadPriority {
                given: 3,
                levels: 2
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_batches_are_capped() {
        let cfg = BatchConfig {
            max_concurrent_batches: 2,
            ..config(1, 0)
        };
        let s = setup(cfg, 50);
        let tasks: Vec<_> = (0..6)
            .map(|i| spawn_submit(&s.handle, i, 1, Submit::default()))
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap().1);
        }
        assert_eq!(s.most_running.load(Ordering::SeqCst), 2);
        // Six one-sample batches, two at a time, 50 ms each: the last ends at 150 ms.
        assert_eq!(times.iter().max(), Some(&Duration::from_millis(150)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_request_runs_alone() {
        let s = setup(config(4, 0), 10);
        let big = spawn_submit(&s.handle, 1, 9, Submit::default());
        settle().await;
        let small = spawn_submit(&s.handle, 2, 1, Submit::default());
        assert_eq!(big.await.unwrap().0, Ok(10));
        assert_eq!(small.await.unwrap().0, Ok(20));
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![1], vec![2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_drains_the_queue_without_waiting() {
        let s = setup(config(8, 10_000), 10);
        let waiting: Vec<_> = (0..3)
            .map(|i| spawn_submit(&s.handle, i, 1, Submit::default()))
            .collect();
        settle().await;
        let start = Instant::now();
        s.batcher.close();
        for t in waiting {
            assert!(t.await.unwrap().0.is_ok());
        }
        // The queued requests ran at once instead of after the 10 s delay.
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        let late = s.handle.submit((9, 1), Submit::default()).await;
        assert_eq!(late, Err(Rejected::ShuttingDown));
        s.batcher.join().await;
        assert_eq!(s.batches.lock().unwrap().clone(), vec![vec![0, 1, 2]]);
    }
}
