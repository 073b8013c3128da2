//! Learning-rate schedules of the ResNet paper and fb.resnet.torch: a serde (YAML) config and a
//! stateful [`Scheduler`] whose state can be checkpointed and restored.
//!
//! - [`Schedule::Steps`]: the CIFAR recipe (base 0.1, ÷10 at 32k and 48k iterations).
//! - [`Schedule::Plateau`]: the ImageNet rule (÷10 when the validation error plateaus).
//! - [`Schedule::Cosine`]: cosine annealing from `base` to `min`.
//! - [`Warmup`]: a linear ramp, or the paper's ResNet-110 warm-up (0.01 until the training error
//!   is below 80 %).

use serde::{Deserialize, Serialize};

fn tenth() -> f64 {
    0.1
}

fn ten() -> f64 {
    10.0
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
}

/// A learning-rate schedule (without warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// lr = base × factor^(number of milestones ≤ the current iteration). CIFAR paper: base 0.1,
    /// milestones [32000, 48000], factor 0.1.
    Steps {
        base: f64,
        milestones: Vec<u64>,
        #[serde(default = "tenth")]
        factor: f64,
    },
    /// The paper's ImageNet rule: divide by `factor` when the validation error has not improved by
    /// more than `threshold` for `patience` evaluations; at most `max_drops` times.
    Plateau {
        base: f64,
        #[serde(default = "ten")]
        factor: f64,
        #[serde(default = "one")]
        patience: u32,
        #[serde(default)]
        threshold: f64,
        #[serde(default = "three")]
        max_drops: u32,
    },
    /// Cosine from `base` to `min` over `total` iterations: min + (base − min)·(1 + cos(π·t/total))/2;
    /// from `total` on it stays at `min`.
    Cosine {
        base: f64,
        total: u64,
        #[serde(default)]
        min: f64,
    },
}

/// Optional warm-up wrapped around any schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Warmup {
    /// Linear from `start` to the schedule's lr over `iterations` iterations:
    /// start + (lr − start)·t/iterations for t < iterations, then the schedule's lr.
    Linear {
        iterations: u64,
        #[serde(default)]
        start: f64,
    },
    /// The paper's ResNet-110 warm-up: a fixed `lr` (0.01) until a training error below
    /// `until_train_error` (0.8) is observed, then the schedule takes over for good.
    UntilTrainError { lr: f64, until_train_error: f64 },
}

/// The mutable part of a [`Scheduler`], for checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// How many times the plateau rule has divided the lr.
    pub drops: u32,
    /// The best validation error seen so far (plateau rule).
    pub best: Option<f64>,
    /// Validation evaluations since the last improvement (or the last drop).
    pub since_best: u32,
    /// Whether the ResNet-110 warm-up has ended.
    pub warmup_done: bool,
}

/// A schedule, an optional warm-up and the state they need.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduler {
    schedule: Schedule,
    warmup: Option<Warmup>,
    state: SchedulerState,
}

impl Scheduler {
    pub fn new(schedule: Schedule, warmup: Option<Warmup>) -> Self {
        Self { schedule, warmup, state: SchedulerState::default() }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn warmup(&self) -> Option<&Warmup> {
        self.warmup.as_ref()
    }

    /// The schedule's lr at `iteration`, ignoring warm-up.
    fn schedule_lr(&self, iteration: u64) -> f64 {
        match &self.schedule {
            Schedule::Steps { base, milestones, factor } => {
                let passed = milestones.iter().filter(|&&m| m <= iteration).count();
                base * factor.powi(passed as i32)
            }
            Schedule::Plateau { base, factor, .. } => base / factor.powi(self.state.drops as i32),
            Schedule::Cosine { base, total, min } => {
                if iteration >= *total {
                    *min
                } else {
                    let progress = iteration as f64 / *total as f64;
                    min + (base - min) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
                }
            }
        }
    }

    /// lr for iteration `iteration` (0-based).
    pub fn lr(&self, iteration: u64) -> f64 {
        let lr = self.schedule_lr(iteration);
        match &self.warmup {
            Some(Warmup::Linear { iterations, start }) if iteration < *iterations => {
                start + (lr - start) * iteration as f64 / *iterations as f64
            }
            Some(Warmup::UntilTrainError { lr: warm, .. }) if !self.state.warmup_done => *warm,
            _ => lr,
        }
    }

    /// Report a validation error (plateau rule); returns true when the lr was divided.
    ///
    /// An error below `best − threshold` is an improvement: it becomes the best and resets the
    /// counter. Otherwise the counter grows, and on reaching `patience` the lr is divided (if fewer
    /// than `max_drops` drops happened) and the counter restarts; the best error is kept.
    /// Non-finite errors count as no improvement. Other schedules ignore validation errors.
    pub fn observe_validation(&mut self, error: f64) -> bool {
        let Schedule::Plateau { patience, threshold, max_drops, .. } = self.schedule else {
            return false;
        };
        let improved = error.is_finite() && self.state.best.is_none_or(|best| error < best - threshold);
        if improved {
            self.state.best = Some(error);
            self.state.since_best = 0;
            return false;
        }
        self.state.since_best = self.state.since_best.saturating_add(1);
        if self.state.since_best >= patience && self.state.drops < max_drops {
            self.state.drops += 1;
            self.state.since_best = 0;
            true
        } else {
            false
        }
    }

    /// Report the running training error (ResNet-110 warm-up): once it is below
    /// `until_train_error`, the warm-up ends for good.
    pub fn observe_training_error(&mut self, error: f64) {
        if let Some(Warmup::UntilTrainError { until_train_error, .. }) = self.warmup {
            if error < until_train_error {
                self.state.warmup_done = true;
            }
        }
    }

    /// The state to put in a checkpoint.
    pub fn state(&self) -> SchedulerState {
        self.state.clone()
    }

    /// Restore a state from [`Scheduler::state`].
    pub fn restore(&mut self, state: SchedulerState) {
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    fn assert_close(a: f64, b: f64) {
        assert!(close(a, b), "{a} != {b}");
    }

    fn cifar() -> Schedule {
        Schedule::Steps { base: 0.1, milestones: vec![32000, 48000], factor: 0.1 }
    }

    fn plateau(patience: u32, threshold: f64, max_drops: u32) -> Scheduler {
        Scheduler::new(Schedule::Plateau { base: 0.1, factor: 10.0, patience, threshold, max_drops }, None)
    }

    #[test]
    fn steps_cifar_recipe() {
        let s = Scheduler::new(cifar(), None);
        for (it, lr) in [(0, 0.1), (31999, 0.1), (32000, 0.01), (47999, 0.01), (48000, 0.001), (64000, 0.001)] {
            assert_close(s.lr(it), lr);
        }
    }

    #[test]
    fn cosine_endpoints() {
        let s = Scheduler::new(Schedule::Cosine { base: 0.1, total: 1000, min: 0.001 }, None);
        assert_close(s.lr(0), 0.1);
        assert_close(s.lr(500), 0.001 + 0.099 / 2.0);
        assert_close(s.lr(250), 0.001 + 0.099 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0);
        assert_close(s.lr(1000), 0.001);
        assert_close(s.lr(5000), 0.001);
        assert!(s.lr(999) > 0.001 && s.lr(999) < s.lr(998));
    }

    #[test]
    fn linear_warmup_ramps_then_hands_over() {
        let s = Scheduler::new(cifar(), Some(Warmup::Linear { iterations: 100, start: 0.0 }));
        assert_eq!(s.lr(0), 0.0);
        for t in [1u64, 25, 50, 99] {
            assert_close(s.lr(t), 0.1 * t as f64 / 100.0);
        }
        assert_close(s.lr(100), 0.1);
        assert_close(s.lr(32000), 0.01);
        let s = Scheduler::new(cifar(), Some(Warmup::Linear { iterations: 10, start: 0.02 }));
        assert_close(s.lr(0), 0.02);
        assert_close(s.lr(5), 0.06);
        assert_close(s.lr(10), 0.1);
    }

    #[test]
    fn plateau_waits_for_patience_and_improvement_resets() {
        let mut s = plateau(2, 0.0, 3);
        assert!(!s.observe_validation(0.5));
        assert_close(s.lr(0), 0.1);
        assert!(!s.observe_validation(0.5)); // equal: not an improvement (1)
        assert!(!s.observe_validation(0.4)); // improvement: counter reset
        assert!(!s.observe_validation(0.45)); // 1
        assert_close(s.lr(0), 0.1);
        assert!(s.observe_validation(0.41)); // 2 = patience: divide
        assert_close(s.lr(123), 0.01);
        assert!(!s.observe_validation(0.42)); // counter restarted after the drop
        assert!(s.observe_validation(0.42));
        assert_close(s.lr(0), 0.001);
    }

    #[test]
    fn plateau_threshold_and_max_drops() {
        let mut s = plateau(1, 0.01, 2);
        assert!(!s.observe_validation(0.5));
        assert!(s.observe_validation(0.495)); // improved by less than the threshold
        assert!(!s.observe_validation(0.48)); // improved by more: new best
        assert_eq!(s.state().best, Some(0.48));
        assert!(s.observe_validation(0.48));
        assert_close(s.lr(0), 0.001);
        assert!(!s.observe_validation(0.9)); // max_drops reached
        assert!(!s.observe_validation(0.9));
        assert_close(s.lr(0), 0.001);
        assert!(!s.observe_validation(f64::NAN));
        assert_eq!(s.state().best, Some(0.48));
    }

    #[test]
    fn validation_ignored_by_other_schedules() {
        let mut s = Scheduler::new(cifar(), None);
        assert!(!s.observe_validation(0.5));
        assert!(!s.observe_validation(0.9));
        assert_close(s.lr(0), 0.1);
    }

    #[test]
    fn resnet110_warmup_until_train_error() {
        let mut s = Scheduler::new(cifar(), Some(Warmup::UntilTrainError { lr: 0.01, until_train_error: 0.8 }));
        assert_close(s.lr(0), 0.01);
        s.observe_training_error(0.9);
        s.observe_training_error(0.8); // not below
        assert_close(s.lr(400), 0.01);
        s.observe_training_error(0.79);
        assert_close(s.lr(401), 0.1);
        s.observe_training_error(0.95); // never goes back
        assert_close(s.lr(402), 0.1);
        assert_close(s.lr(32000), 0.01);
    }

    #[test]
    fn state_restore_round_trips() {
        let make = || {
            Scheduler::new(
                Schedule::Plateau { base: 0.1, factor: 10.0, patience: 2, threshold: 0.0, max_drops: 3 },
                Some(Warmup::UntilTrainError { lr: 0.02, until_train_error: 0.8 }),
            )
        };
        let mut a = make();
        a.observe_training_error(0.7);
        for e in [0.5, 0.4, 0.45, 0.41, 0.42] {
            a.observe_validation(e);
        }
        let json = serde_json::to_string(&a.state()).unwrap();
        let mut b = make();
        assert_ne!(b.lr(0), a.lr(0));
        b.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(b.state(), a.state());
        for e in [0.43, 0.39, 0.4, 0.4, 0.4, 0.4] {
            assert_eq!(a.observe_validation(e), b.observe_validation(e));
            assert_eq!(a.lr(1000), b.lr(1000));
        }
        assert_close(b.lr(0), 0.0001);
    }

    #[test]
    fn yaml_parses_each_kind() {
        let s: Schedule = serde_yaml::from_str("kind: steps\nbase: 0.1\nmilestones: [32000, 48000]\n").unwrap();
        assert_eq!(s, cifar());
        let s: Schedule = serde_yaml::from_str("kind: plateau\nbase: 0.1\n").unwrap();
        assert_eq!(s, Schedule::Plateau { base: 0.1, factor: 10.0, patience: 1, threshold: 0.0, max_drops: 3 });
        let s: Schedule =
            serde_yaml::from_str("kind: plateau\nbase: 0.1\nfactor: 5\npatience: 2\nthreshold: 0.001\nmax_drops: 4\n")
                .unwrap();
        assert_eq!(s, Schedule::Plateau { base: 0.1, factor: 5.0, patience: 2, threshold: 0.001, max_drops: 4 });
        let s: Schedule = serde_yaml::from_str("kind: cosine\nbase: 0.1\ntotal: 1000\n").unwrap();
        assert_eq!(s, Schedule::Cosine { base: 0.1, total: 1000, min: 0.0 });
        let w: Warmup = serde_yaml::from_str("kind: linear\niterations: 500\n").unwrap();
        assert_eq!(w, Warmup::Linear { iterations: 500, start: 0.0 });
        let w: Warmup = serde_yaml::from_str("kind: until-train-error\nlr: 0.01\nuntil_train_error: 0.8\n").unwrap();
        assert_eq!(w, Warmup::UntilTrainError { lr: 0.01, until_train_error: 0.8 });
        let back: Schedule = serde_yaml::from_str(&serde_yaml::to_string(&cifar()).unwrap()).unwrap();
        assert_eq!(back, cifar());
    }

    #[test]
    fn yaml_rejects_unknown_fields_and_kinds() {
        assert!(serde_yaml::from_str::<Schedule>("kind: steps\nbase: 0.1\nmilestones: []\nfactr: 0.1\n").is_err());
        assert!(serde_yaml::from_str::<Schedule>("kind: plateau\nbase: 0.1\npatiance: 2\n").is_err());
        assert!(serde_yaml::from_str::<Schedule>("kind: cosine\nbase: 0.1\ntotal: 10\nmax: 1\n").is_err());
        assert!(serde_yaml::from_str::<Schedule>("kind: linear\nbase: 0.1\n").is_err());
        assert!(serde_yaml::from_str::<Warmup>("kind: linear\niterations: 5\nend: 0.1\n").is_err());
        assert!(serde_yaml::from_str::<Warmup>("kind: until-train-error\nlr: 0.01\nuntil_train_error: 0.8\nx: 1\n")
            .is_err());
        assert!(serde_yaml::from_str::<Schedule>("base: 0.1\ntotal: 10\n").is_err());
    }
}
