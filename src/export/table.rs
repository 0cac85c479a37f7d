//! The table `export` prints: each form's size, accuracy, agreement with fp32 and latency,
//! then what was rejected, only structure-checked or skipped.

use std::fmt;

use super::{ExportReport, Latency};

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        writeln!(
            f,
            "{:<20} {:>22} {:>10} {:>7} {:>9} {:>9} {:>10} {:>10}",
            "format", "runtime", "bytes", "ratio", "accuracy", "agreement", "ms @1", "ms @32"
        )?;
        let ms = |l: &Latency, b: &str| l.get(b).copied().unwrap_or(f64::NAN);
        writeln!(
            f,
            "{:<20} {:>22} {:>10} {:>7} {:>9.3} {:>9} {:>10.1} {:>10.1}",
            "fp32",
            "burn-flex",
            r.fp32.bytes,
            "1.00",
            r.fp32.accuracy,
            "-",
            ms(&r.fp32.latency_ms, "1"),
            ms(&r.fp32.latency_ms, "32")
        )?;
        for form in &r.formats {
            writeln!(
                f,
                "{:<20} {:>22} {:>10} {:>7.2} {:>9.3} {:>9.3} {:>10.1} {:>10.1}",
                form.format,
                form.runtime,
                form.bytes,
                form.size_ratio,
                form.accuracy,
                form.agreement,
                ms(&form.latency_ms, "1"),
                ms(&form.latency_ms, "32")
            )?;
        }
        write!(
            f,
            "accuracy on {} validation samples; agreement with fp32 on {} (validation and training \
             samples not used for calibration), at least {:.2}% required",
            r.validation_samples,
            r.checked_samples,
            r.min_agreement * 100.0
        )?;
        if let Some(why) = &r.too_few_to_judge {
            write!(f, "\nnote: {why}")?;
        }
        for form in &r.rejected {
            write!(
                f,
                "\nREJECTED {}: agrees with fp32 on {:.2}% (95% interval {:.2}-{:.2}%), accuracy \
                 {:.3}; {} not written",
                form.format,
                form.agreement * 100.0,
                form.agreement_interval.0 * 100.0,
                form.agreement_interval.1 * 100.0,
                form.accuracy,
                form.file
            )?;
        }
        for form in &r.structure_checked {
            write!(
                f,
                "\n{:<12} {:>12} bytes  {} ({})",
                form.format, form.bytes, form.file, form.checked
            )?;
        }
        for s in &r.skipped {
            write!(f, "\nskipped {}: {}", s.format, s.reason)?;
        }
        if let Some(t) = &r.tensorrt {
            write!(
                f,
                "\nTensorRT plan {} (engines: {})",
                t.plan,
                t.engines.join(", ")
            )?;
            for file in &t.built {
                write!(f, "\nTensorRT engine {file}")?;
            }
        }
        Ok(())
    }
}
