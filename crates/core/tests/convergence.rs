//! Convergence: 2 to 6 devices make random changes with skewed clocks, and hear of each other's
//! operations in random orders, late, twice, too early, and through snapshot merges at random
//! points. Once everyone has heard everything, every device's state encodes to the same bytes,
//! and so does a state built by applying every log in a fixed order.
//!
//! The normal run tries 10,000 cases; `cargo test -p ferry-core --test convergence -- --ignored`
//! runs the 200,000-case soak.

use ferry_core::{
    Applied, ClipContent, ClipId, CoreError, DeviceId, Op, Replica, Retention, State,
};
use ferry_protocol::{NamesKey, SyncKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const HOUR: i64 = 3_600_000;
const POOL: usize = 6;

#[derive(Debug, Clone)]
enum Local {
    Register(u8),
    Copy(usize),
    Pin(usize, bool),
    Favourite(usize, bool),
    Delete(usize),
    Restore(usize),
    Purge(usize),
    CreateCollection(usize),
    RenameCollection(usize, usize),
    DeleteCollection(usize),
    AddToCollection(usize, usize),
    RemoveFromCollection(usize, usize),
    Alias(usize, Option<usize>),
    Setting(usize, Option<usize>),
    Retention,
}

#[derive(Debug, Clone)]
enum Step {
    Local(usize, Local),
    Deliver {
        from: usize,
        to: usize,
        count: usize,
    },
    Duplicate {
        from: usize,
        to: usize,
        back: usize,
    },
    TooEarly {
        from: usize,
        to: usize,
        ahead: usize,
    },
    Snapshot {
        from: usize,
        to: usize,
    },
}

fn local() -> impl Strategy<Value = Local> {
    let i = 0..POOL;
    prop_oneof![
        6 => i.clone().prop_map(Local::Copy),
        2 => (i.clone(), any::<bool>()).prop_map(|(c, b)| Local::Pin(c, b)),
        1 => (i.clone(), any::<bool>()).prop_map(|(c, b)| Local::Favourite(c, b)),
        2 => i.clone().prop_map(Local::Delete),
        1 => i.clone().prop_map(Local::Restore),
        1 => i.clone().prop_map(Local::Purge),
        1 => i.clone().prop_map(Local::CreateCollection),
        1 => (i.clone(), i.clone()).prop_map(|(c, n)| Local::RenameCollection(c, n)),
        1 => i.clone().prop_map(Local::DeleteCollection),
        3 => (i.clone(), i.clone()).prop_map(|(c, k)| Local::AddToCollection(c, k)),
        2 => (i.clone(), i.clone()).prop_map(|(c, k)| Local::RemoveFromCollection(c, k)),
        2 => (0..3usize, prop::option::of(0..4usize)).prop_map(|(n, v)| Local::Alias(n, v)),
        2 => (0..3usize, prop::option::of(0..4usize)).prop_map(|(n, v)| Local::Setting(n, v)),
        1 => Just(Local::Retention),
        1 => (0..3u8).prop_map(Local::Register),
    ]
}

fn step(devices: usize) -> impl Strategy<Value = Step> {
    let d = 0..devices;
    prop_oneof![
        5 => (d.clone(), local()).prop_map(|(dev, l)| Step::Local(dev, l)),
        4 => (d.clone(), d.clone(), 1..6usize).prop_map(|(from, to, count)| Step::Deliver { from, to, count }),
        1 => (d.clone(), d.clone(), 0..6usize).prop_map(|(from, to, back)| Step::Duplicate { from, to, back }),
        1 => (d.clone(), d.clone(), 1..4usize).prop_map(|(from, to, ahead)| Step::TooEarly { from, to, ahead }),
        1 => (d.clone(), d.clone()).prop_map(|(from, to)| Step::Snapshot { from, to }),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<i64>, Vec<Step>)> {
    (2..=6usize).prop_flat_map(|n| {
        (
            prop::collection::vec(-3 * HOUR..3 * HOUR, n),
            prop::collection::vec(step(n), 1..60),
        )
    })
}

fn names() -> NamesKey {
    SyncKey::from_bytes([3; 32]).keys().names
}

fn content(i: usize) -> ClipContent {
    ClipContent::Text(format!("clip number {i}"))
}

struct World {
    names: NamesKey,
    replicas: Vec<Replica>,
    logs: Vec<Vec<Op>>,
    skews: Vec<i64>,
    time: i64,
}

impl World {
    fn new(skews: Vec<i64>) -> Self {
        let replicas = (0..skews.len())
            .map(|i| Replica::new(DeviceId([i as u8 + 1; 16])))
            .collect();
        World {
            names: names(),
            replicas,
            logs: vec![Vec::new(); skews.len()],
            skews,
            time: 1_800_000_000_000,
        }
    }

    fn run(&mut self, step: &Step) {
        self.time += 7;
        match step {
            Step::Local(dev, action) => self.local(*dev, action.clone()),
            Step::Deliver { from, to, count } => {
                let next = self.next_for(*from, *to);
                for op in self.logs[*from]
                    .iter()
                    .skip(next)
                    .take(*count)
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    assert_eq!(self.replicas[*to].apply(op), Ok(Applied::New));
                }
            }
            Step::Duplicate { from, to, back } => {
                let next = self.next_for(*from, *to);
                if next > 0 {
                    let op = self.logs[*from][next.saturating_sub(back + 1)].clone();
                    let before = self.replicas[*to].state().encode();
                    assert_eq!(self.replicas[*to].apply(op), Ok(Applied::Duplicate));
                    assert_eq!(self.replicas[*to].state().encode(), before);
                }
            }
            Step::TooEarly { from, to, ahead } => {
                let next = self.next_for(*from, *to);
                if let Some(op) = self.logs[*from].get(next + ahead).cloned() {
                    let before = self.replicas[*to].state().encode();
                    assert!(matches!(
                        self.replicas[*to].apply(op),
                        Err(CoreError::Gap { .. })
                    ));
                    assert_eq!(self.replicas[*to].state().encode(), before);
                }
            }
            Step::Snapshot { from, to } => {
                let snapshot = State::decode(&self.replicas[*from].state().encode()).unwrap();
                self.replicas[*to].merge(snapshot);
            }
        }
    }

    /// Index in `from`'s log of the next operation `to` has not applied.
    fn next_for(&self, from: usize, to: usize) -> usize {
        let device = self.replicas[from].device();
        self.replicas[to].state().seen(&device) as usize
    }

    fn local(&mut self, dev: usize, action: Local) {
        let now = (self.time + self.skews[dev]) as u64;
        let names = self.names.clone();
        let clip = |i| ClipId::for_content(&names, &content(i));
        let collections: Vec<_> = self.replicas[dev]
            .state()
            .collections()
            .iter()
            .map(|c| c.id)
            .collect();
        let pick = |i: usize| collections.get(i % collections.len().max(1)).copied();
        let r = &mut self.replicas[dev];
        let ops = match action {
            Local::Copy(i) => vec![r.copy(&self.names, content(i), now)],
            Local::Pin(i, b) => vec![r.set_pinned(clip(i), b, now)],
            Local::Favourite(i, b) => vec![r.set_favourite(clip(i), b, now)],
            Local::Delete(i) => vec![r.delete(clip(i), now)],
            Local::Restore(i) => vec![r.restore(clip(i), now)],
            Local::Purge(i) => vec![r.purge(clip(i), now)],
            Local::CreateCollection(n) => vec![r.create_collection(format!("c{n}"), now).1],
            Local::RenameCollection(c, n) => match pick(c) {
                Some(id) => vec![r.rename_collection(id, format!("r{n}"), now)],
                None => vec![],
            },
            Local::DeleteCollection(c) => match pick(c) {
                Some(id) => vec![r.delete_collection(id, now)],
                None => vec![],
            },
            Local::AddToCollection(c, k) => match pick(c) {
                Some(id) => vec![r.add_to_collection(id, clip(k), now)],
                None => vec![],
            },
            Local::RemoveFromCollection(c, k) => match pick(c) {
                Some(id) => vec![r.remove_from_collection(id, clip(k), now)],
                None => vec![],
            },
            Local::Alias(n, v) => {
                vec![r.set_alias(format!("a{n}"), v.map(|v| format!("v{v}")), now)]
            }
            Local::Setting(n, v) => {
                vec![r.set_setting(format!("s{n}"), v.map(|v| format!("{v}")), now)]
            }
            // Registering again with other keys: the roster must still agree everywhere.
            Local::Register(seed) => {
                let keys = ferry_protocol::Identity::from_secret_bytes(&[seed; 64]).public();
                vec![r.register(format!("device {seed}"), keys, now)]
            }
            Local::Retention => r.retention(
                &Retention {
                    trash_ms: Some(20),
                    max_history: Some(3),
                },
                now,
            ),
        };
        self.logs[dev].extend(ops);
    }

    fn finish(&mut self) {
        for to in 0..self.replicas.len() {
            for from in 0..self.replicas.len() {
                let next = self.next_for(from, to);
                for op in self.logs[from][next..].iter().cloned() {
                    assert_eq!(self.replicas[to].apply(op), Ok(Applied::New));
                }
            }
        }
    }
}

fn check(skews: Vec<i64>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut world = World::new(skews);
    for step in &steps {
        world.run(step);
    }
    world.finish();

    let first = world.replicas[0].state().encode();
    for (i, replica) in world.replicas.iter().enumerate() {
        prop_assert_eq!(&replica.state().encode(), &first, "device {} diverged", i);
    }

    // The same operations applied device by device to a fresh state.
    let mut reference = State::new();
    for log in &world.logs {
        for op in log {
            prop_assert_eq!(reference.apply(op.clone()), Ok(Applied::New));
        }
    }
    prop_assert_eq!(reference.encode(), first.clone());

    // States merged with nothing but snapshots, in reverse order.
    let mut merged = State::new();
    for replica in world.replicas.iter().rev() {
        merged.merge(State::decode(&replica.state().encode()).unwrap());
    }
    prop_assert_eq!(merged.encode(), first.clone());

    // Queries agree too (they read derived indexes the encoding does not hold).
    let a = world.replicas[0].state();
    for replica in &world.replicas[1..] {
        let b = replica.state();
        prop_assert_eq!(a.history(None, usize::MAX), b.history(None, usize::MAX));
        prop_assert_eq!(a.trash(), b.trash());
        prop_assert_eq!(a.collections(), b.collections());
        prop_assert_eq!(a.stats(), b.stats());
    }
    Ok(())
}

fn run_cases(cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
        )),
        ..Config::default()
    });
    runner
        .run(&scenario(), |(skews, steps)| check(skews, steps))
        .unwrap();
}

#[test]
fn devices_converge() {
    run_cases(10_000);
}

#[test]
#[ignore = "soak: run with --ignored"]
fn devices_converge_soak() {
    run_cases(200_000);
}
