//! Progress bars for long work (packing, verifying, importing) on a terminal; nothing when
//! standard error is not one, so logs and pipes stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use airlock_bundle::{Progress, Silent};
use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A byte progress bar on a terminal, with rate, ETA and the entry being read.
pub fn progress_bar(verb: &'static str) -> Box<dyn Progress> {
    if !std::io::stderr().is_terminal() {
        return Box::new(Silent);
    }
    Box::new(Bar { bar: ProgressBar::hidden(), verb })
}

struct Bar {
    bar: ProgressBar,
    verb: &'static str,
}

/// No estimate until there is something to estimate from: the first seconds (opening the
/// file, checking signatures) would otherwise project hours.
const ETA_AFTER: Duration = Duration::from_secs(2);
const ETA_AFTER_FRACTION: f32 = 0.01;

fn eta(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let text = if state.elapsed() < ETA_AFTER || state.fraction() < ETA_AFTER_FRACTION {
        "eta …".to_string()
    } else {
        format!("eta {}", HumanDuration(state.eta()))
    };
    let _ = w.write_str(&text);
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.bar.set_length(total_bytes);
        // Elapsed time and the rate estimate count from here, not from when the bar was made.
        self.bar.reset();
        self.bar.set_draw_target(ProgressDrawTarget::stderr());
        self.bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta_after_start}\n  {wide_msg}")
                .expect("valid template")
                .with_key("eta_after_start", eta)
                .progress_chars("=> "),
        );
        self.bar.set_prefix(self.verb);
    }

    fn entry(&self, label: &str) {
        self.bar.set_message(label.to_string());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
