//! How sync has been going, for `ferry status`: the recent problems, each with its time and,
//! once its cause is gone (the next upload or fetch went through), when it was resolved.
//! Whether the storage answers is noted where its requests are made (`Remote`).

use std::collections::VecDeque;
use std::time::SystemTime;

use ferry_protocol::DeviceTag;

use super::Pass;

/// How many problems are kept, resolved or not.
const KEPT: usize = 10;

/// Something that went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// When it happened (the last time, when it happened again).
    pub at: SystemTime,
    /// What happened.
    pub message: String,
    /// When its cause was found gone: the pass that failed went through since.
    pub resolved: Option<SystemTime>,
    cause: Cause,
}

/// What makes a problem go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// An upload that goes through.
    Upload,
    /// A fetch that goes through.
    Fetch,
    /// A fetch in which this device's objects were read.
    Device(DeviceTag),
    /// Nothing: it stands until newer problems push it out.
    Standing,
}

/// Whether the storage answered its last request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    /// It answered.
    pub answering: bool,
    /// Since when it answers, or fails.
    pub since: SystemTime,
    /// What the last failure was, while it fails.
    pub error: Option<String>,
}

/// The problems the engine saw since it opened.
#[derive(Debug, Default)]
pub(super) struct Health {
    problems: VecDeque<Problem>,
}

impl Health {
    /// Notes a problem; the same one again (unresolved) only moves its time.
    pub(super) fn note(&mut self, cause: Cause, message: String) {
        let now = SystemTime::now();
        if let Some(same) = self
            .problems
            .iter_mut()
            .find(|p| p.resolved.is_none() && p.cause == cause && p.message == message)
        {
            same.at = now;
            return;
        }
        if self.problems.len() == KEPT {
            // The oldest resolved one goes first.
            let index = self
                .problems
                .iter()
                .position(|p| p.resolved.is_some())
                .unwrap_or(0);
            self.problems.remove(index);
        }
        self.problems.push_back(Problem {
            at: now,
            message,
            resolved: None,
            cause,
        });
    }

    /// A pass went through: the problems it had are resolved.
    pub(super) fn passed(&mut self, pass: Pass) {
        let cleared = match pass {
            Pass::Upload => Cause::Upload,
            Pass::Fetch => Cause::Fetch,
        };
        self.resolve(|cause| cause == cleared, SystemTime::now());
    }

    /// A fetch went through, reading every device but those in `failed`.
    pub(super) fn devices_read(&mut self, failed: &[DeviceTag]) {
        self.resolve(
            |cause| matches!(cause, Cause::Device(tag) if !failed.contains(&tag)),
            SystemTime::now(),
        );
    }

    fn resolve(&mut self, cleared: impl Fn(Cause) -> bool, now: SystemTime) {
        for problem in &mut self.problems {
            if problem.resolved.is_none() && cleared(problem.cause) {
                problem.resolved = Some(now);
            }
        }
    }

    /// The problems kept, oldest first.
    pub(super) fn problems(&self) -> Vec<Problem> {
        self.problems.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_resolved_by_the_pass_that_failed_going_through() {
        let mut health = Health::default();
        health.note(Cause::Upload, "upload failed".into());
        health.note(Cause::Fetch, "fetch failed".into());
        health.note(Cause::Standing, "a planted object".into());
        health.passed(Pass::Upload);
        let resolved: Vec<bool> = health
            .problems()
            .iter()
            .map(|p| p.resolved.is_some())
            .collect();
        assert_eq!(resolved, [true, false, false]);
        health.passed(Pass::Fetch);
        assert!(health.problems()[1].resolved.is_some());
        assert!(health.problems()[2].resolved.is_none(), "standing");
    }

    #[test]
    fn the_same_problem_again_is_one_line_and_old_resolved_ones_go_first() {
        let mut health = Health::default();
        health.note(Cause::Upload, "upload failed".into());
        health.note(Cause::Upload, "upload failed".into());
        assert_eq!(health.problems().len(), 1);
        health.passed(Pass::Upload);
        for n in 0..KEPT {
            health.note(Cause::Standing, format!("standing {n}"));
        }
        let problems = health.problems();
        assert_eq!(problems.len(), KEPT);
        assert!(problems.iter().all(|p| p.resolved.is_none()));
    }

    #[test]
    fn a_device_read_again_resolves_its_own_problem_only() {
        let (one, two) = (DeviceTag([1; 16]), DeviceTag([2; 16]));
        let mut health = Health::default();
        health.note(Cause::Device(one), "fetching one failed".into());
        health.note(Cause::Device(two), "fetching two failed".into());
        health.devices_read(&[two]);
        let problems = health.problems();
        assert!(problems[0].resolved.is_some());
        assert!(problems[1].resolved.is_none());
    }
}
