//! Progress shown while images are scored: a bar with a rounded rate and an ETA on a terminal,
//! plain lines every 10 s otherwise, nothing at all under `--quiet`. The one place progress is
//! drawn, so that one switch ([`set_quiet`]) silences every bar (the engine's and the Hugging
//! Face download's) and every progress [`line`] (training's epochs).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Set once by the CLI's `-q/--quiet`; read wherever progress would be drawn.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences (or restores) every progress bar and progress line of this process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress is silenced.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress line that is not a bar (a resumed run, a finished training epoch): on stderr,
/// unless `--quiet`.
pub fn line(text: impl std::fmt::Display) {
    if !quiet() {
        eprintln!("{text}");
    }
}

/// A rate as a reader wants it: whole images per second from 10 up, one decimal below 10
/// (`1234 images/s`, `56 images/s`, `3.4 images/s`); more digits are noise between batches.
pub fn rate_text(per_second: f64) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        "— images/s".into()
    } else if per_second >= 9.95 {
        format!("{per_second:.0} images/s")
    } else {
        format!("{per_second:.1} images/s")
    }
}

/// Progress over the images of one (model, protocol) run. Positions are in images; a batch
/// advances it by its share of the chunk's views, so the bar moves per batch even though images
/// are only complete (and stored) per chunk.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether anything is shown (false under `--quiet`).
    shown: bool,
    label: String,
    total: usize,
    /// Images stored (whole chunks), including those found stored at the start.
    done: usize,
    /// Images of the chunk in progress, as a fraction of its views already through the model.
    partial: f64,
    /// Images computed by this process (not read back from the store).
    computed: usize,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    /// `already`: images found stored from an earlier run (the bar starts there).
    pub fn new(label: &str, total: usize, already: usize) -> Self {
        let shown = !quiet();
        let bar = (shown && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64).with_prefix(label.to_string());
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images, {rate}, eta {eta}")
                .map(|style| {
                    style.with_key("rate", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        // Errors writing into indicatif's own line buffer cannot be acted on.
                        let _ = out.write_str(&rate_text(state.per_sec()));
                    })
                })
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(already as u64);
            bar.reset_eta();
            bar
        });
        if shown && already > 0 {
            eprintln!("{label}: resuming, {already}/{total} images already stored");
        }
        let now = Instant::now();
        Self {
            bar,
            shown,
            label: label.to_string(),
            total,
            done: already,
            partial: 0.0,
            computed: 0,
            start: now,
            last_line: now,
        }
    }

    /// One batch went through the model: `views` of the chunk's `chunk_views` views, the chunk
    /// holding `chunk_images` images.
    pub fn batch(&mut self, views: usize, chunk_views: usize, chunk_images: usize) {
        if chunk_views > 0 {
            self.partial =
                (self.partial + chunk_images as f64 * views as f64 / chunk_views as f64).min(chunk_images as f64);
        }
        self.show();
    }

    /// A chunk of `images` images is complete and stored.
    pub fn chunk(&mut self, images: usize) {
        self.done += images;
        self.computed += images;
        self.partial = 0.0;
        self.show();
    }

    /// Images through the model so far, whole ones.
    fn position(&self) -> usize {
        (self.done + self.partial.floor() as usize).min(self.total)
    }

    fn show(&mut self) {
        let position = self.position();
        match &self.bar {
            Some(bar) => bar.set_position(position as u64),
            None if self.shown && self.last_line.elapsed() >= Duration::from_secs(10) => {
                self.last_line = Instant::now();
                let computed = self.computed as f64 + self.partial;
                let rate = computed / self.start.elapsed().as_secs_f64().max(1e-9);
                let eta = (self.total - position) as f64 / rate.max(1e-9);
                eprintln!("{}: {position}/{} images, {}, eta {eta:.0} s", self.label, self.total, rate_text(rate));
            }
            None => {}
        }
    }

    /// Clears the bar and prints one summary line (unless quiet or nothing was computed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let seconds = self.start.elapsed().as_secs_f64();
        if self.shown && self.computed > 0 {
            let rate = self.computed as f64 / seconds.max(1e-9);
            eprintln!("{}: {} images in {seconds:.1} s ({})", self.label, self.computed, rate_text(rate));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_rounded_to_what_matters() {
        assert_eq!(rate_text(1234.567), "1235 images/s");
        assert_eq!(rate_text(56.44), "56 images/s");
        assert_eq!(rate_text(9.96), "10 images/s");
        assert_eq!(rate_text(3.4567), "3.5 images/s");
        assert_eq!(rate_text(0.0), "— images/s");
        assert_eq!(rate_text(f64::NAN), "— images/s");
    }

    #[test]
    fn batches_move_the_position_within_a_chunk() {
        // Not a terminal under the test harness, and quiet or not, the position is kept.
        let mut p = Progress::new("m/p", 100, 0);
        p.batch(30, 120, 40); // 30 of 120 views of a 40-image chunk: 10 images
        assert_eq!(p.position(), 10);
        p.batch(90, 120, 40);
        assert_eq!(p.position(), 40);
        p.batch(1, 120, 40); // never past the chunk
        assert_eq!(p.position(), 40);
        p.chunk(40);
        assert_eq!(p.position(), 40);
        p.batch(60, 60, 60);
        p.chunk(60);
        assert_eq!(p.position(), 100);
    }

    #[test]
    fn the_quiet_switch_is_read_back() {
        set_quiet(true);
        assert!(quiet());
        assert!(!Progress::new("m/p", 10, 5).shown);
        set_quiet(false);
        assert!(!quiet());
    }
}
