//! Training progress: an indicatif bar per epoch (loss, accuracy, images/s, ETA) fed by
//! vars-train's [`Progress`] events, a one-line summary per epoch, and the step history the
//! plots are drawn from.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vars_train::{Control, EpochMetrics, Progress};

/// Per-step record kept for the plots.
#[derive(Debug, Clone, Copy)]
pub struct StepPoint {
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    pub loss: f64,
    /// Training accuracy of the step's batch.
    pub accuracy: f64,
}

/// The progress display of one training run.
pub struct TrainProgress {
    name: String,
    epochs: usize,
    quiet: bool,
    bar: Option<ProgressBar>,
    steps_per_epoch: usize,
    // running sums of the current epoch (for the bar)
    loss_sum: f64,
    correct: u64,
    samples: u64,
    seconds: f64,
    steps: u64,
    /// Every step of this run.
    pub history: Vec<StepPoint>,
    /// Every finished epoch.
    pub epochs_done: Vec<EpochMetrics>,
}

impl TrainProgress {
    /// `name` prefixes every line (e.g. the model); `quiet` hides the bar and the epoch lines.
    pub fn new(name: &str, epochs: usize, quiet: bool) -> Self {
        TrainProgress {
            name: name.to_string(),
            epochs,
            quiet,
            bar: None,
            steps_per_epoch: 0,
            loss_sum: 0.0,
            correct: 0,
            samples: 0,
            seconds: 0.0,
            steps: 0,
            history: Vec::new(),
            epochs_done: Vec::new(),
        }
    }

    fn new_bar(&self, len: u64, pos: u64, epoch: usize) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(len)
        };
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} {msg} eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{} epoch {}/{}", self.name, epoch + 1, self.epochs));
        bar.set_position(pos);
        bar
    }

    /// The callback for `FitOptions::progress`.
    pub fn on_event(&mut self, ev: Progress<'_>) -> Control {
        match ev {
            Progress::EpochStart {
                epoch,
                first_step,
                steps_per_epoch,
            } => {
                self.steps_per_epoch = steps_per_epoch;
                self.loss_sum = 0.0;
                self.correct = 0;
                self.samples = 0;
                self.seconds = 0.0;
                self.steps = 0;
                self.bar = Some(self.new_bar(steps_per_epoch as u64, first_step as u64, epoch));
            }
            Progress::Step(r) => {
                self.loss_sum += r.loss;
                self.correct += r.correct;
                self.samples += r.samples;
                self.seconds += r.seconds;
                self.steps += 1;
                let spe = self.steps_per_epoch.max(1) as f64;
                self.history.push(StepPoint {
                    epoch: r.epoch as f64 + (r.step + 1) as f64 / spe,
                    loss: r.loss,
                    accuracy: r.correct as f64 / r.samples.max(1) as f64,
                });
                if let Some(bar) = &self.bar {
                    bar.set_message(format!(
                        "loss {:.4}  acc {:.1}%  {:.0} img/s",
                        self.loss_sum / self.steps as f64,
                        100.0 * self.correct as f64 / self.samples.max(1) as f64,
                        self.samples as f64 / self.seconds.max(1e-9)
                    ));
                    bar.inc(1);
                }
            }
            Progress::EpochEnd(m) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                if !self.quiet {
                    eprintln!("{}", epoch_line(&self.name, self.epochs, m));
                }
                self.epochs_done.push(m.clone());
            }
            Progress::Checkpoint { .. } => {}
        }
        Control::Continue
    }

    /// Clears a bar left by an interrupted epoch.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `model epoch 3/10: train loss 0.4123 acc 85.2% | test loss 0.39 acc 86.1% | 512 img/s, 19.5 s`
pub fn epoch_line(name: &str, epochs: usize, m: &EpochMetrics) -> String {
    let mut s = format!(
        "{name} epoch {}/{epochs}: train loss {:.4} acc {:.1}%",
        m.epoch + 1,
        m.loss,
        100.0 * m.accuracy
    );
    if let Some(e) = &m.eval {
        s.push_str(&format!(
            " | test loss {:.4} acc {:.2}%",
            e.loss,
            100.0 * e.accuracy
        ));
    }
    s.push_str(&format!(
        " | {:.0} img/s, {:.1} s, lr {:.2e}",
        m.images_per_sec, m.seconds, m.lr
    ));
    s
}

/// Averages of consecutive windows of `k` points (for smoother loss curves).
pub fn smooth(
    points: &[StepPoint],
    k: usize,
    value: impl Fn(&StepPoint) -> f64,
) -> Vec<(f64, f64)> {
    points
        .chunks(k.max(1))
        .map(|c| {
            let n = c.len() as f64;
            (
                c.last().map_or(0.0, |p| p.epoch),
                c.iter().map(&value).sum::<f64>() / n,
            )
        })
        .collect()
}
