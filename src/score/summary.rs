//! What `score` prints: the job's state, rows read, samples scored and skipped, imputed
//! values and the time per stage.

use std::fmt;

use super::ScoreSummary;

impl fmt::Display for ScoreSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self;
        if s.already_complete {
            return write!(
                f,
                "{} is already complete for this job (shard {}): nothing to do",
                s.output.display(),
                s.shard
            );
        }
        let c = &s.counts;
        if s.complete {
            writeln!(
                f,
                "scores written to {} (shard {})",
                s.output.display(),
                s.shard
            )?;
        } else {
            writeln!(
                f,
                "stopped after {} part(s): {} of {} buckets done; run again with --resume to finish",
                s.parts_scored,
                s.parts_reused + s.parts_scored,
                s.buckets
            )?;
        }
        let read: Vec<String> = s
            .rows_read
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        writeln!(f, "rows of this shard read: {}", read.join(", "))?;
        writeln!(
            f,
            "samples: {} ({} scored, {} skipped); parts: {} scored now, {} reused of {}",
            c.samples,
            c.scored,
            c.skipped.values().sum::<usize>(),
            s.parts_scored,
            s.parts_reused,
            s.buckets
        )?;
        for (reason, n) in &c.skipped {
            writeln!(f, "  skipped, {reason}: {n}")?;
        }
        if c.imputed_values > 0 {
            writeln!(
                f,
                "imputed: {} values in {} samples (training medians)",
                c.imputed_values, c.imputed_samples
            )?;
        }
        let total: f64 = s.stage_seconds.iter().map(|(_, t)| t).sum();
        writeln!(f, "{:<20} {:>9}", "stage", "seconds")?;
        for (name, secs) in &s.stage_seconds {
            writeln!(f, "{name:<20} {secs:>9.2}")?;
        }
        write!(f, "{:<20} {:>9.2}", "total", total)?;
        if total > 0.0 && c.scored > 0 {
            write!(f, "\n{:.0} samples/s", c.samples as f64 / total)?;
        }
        Ok(())
    }
}
