//! `tensorrt/`: the plan for building TensorRT engines from the exported ONNX models on the
//! machine that will run them (engines are specific to the TensorRT version and the GPU), and
//! the build itself when `trtexec` is there.
//!
//! - One optimisation profile from the serving batcher's settings: batch 1 (min), the largest
//!   preferred batch size or else the max batch size (opt), the max batch size (max).
//! - Precisions: fp32 from `model.onnx`; fp16 (TensorRT 10: `--fp16` on `model.onnx`;
//!   TensorRT 11, which builds strongly typed networks only: the FP16-typed
//!   `model-fp16.onnx`); int8 from the QDQ model `model-int8-tensorrt.onnx` (TensorRT 10 also
//!   takes `--int8` to allow INT8 kernels; 11 reads the precision from the Q/DQ nodes).
//! - Engines are cached under `engines/PRECISION-KEY.plan`, KEY a hash of the ONNX bytes, the
//!   TensorRT version, the GPU's compute capability, the profile and the precision: a cached
//!   engine is reused only where it is valid.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artefact;
use crate::batching::BatchConfig;

pub const DIR: &str = "tensorrt";
pub const PLAN_FILE: &str = "plan.json";
pub const BUILD_FILE: &str = "build.json";
const TIMING_CACHE: &str = "timing.cache";
/// The supported major versions of TensorRT.
pub const VERSIONS: [u32; 2] = [10, 11];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub input: String,
    /// [C, H, W] of one image.
    pub shape: [usize; 3],
    pub min: usize,
    pub opt: usize,
    pub max: usize,
}

impl Profile {
    pub fn from_batching(batching: &BatchConfig, shape: [usize; 3]) -> Self {
        let max = batching.max_batch_size.max(1);
        let opt = batching
            .preferred_batch_sizes
            .iter()
            .copied()
            .filter(|&p| p <= max)
            .max()
            .unwrap_or(max);
        Self {
            input: super::onnx::INPUT.into(),
            shape,
            min: 1,
            opt,
            max,
        }
    }

    fn shapes(&self, batch: usize) -> String {
        let [c, h, w] = self.shape;
        format!("{}:{batch}x{c}x{h}x{w}", self.input)
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.shapes(self.min),
            self.shapes(self.opt),
            self.shapes(self.max)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Int8 => "int8",
        }
    }
}

/// The ONNX files exported next to the plan, by name and sha256.
#[derive(Debug, Clone, Default)]
pub struct OnnxFiles {
    pub fp32: Option<(String, String)>,
    pub fp16: Option<(String, String)>,
    pub int8: Option<(String, String)>,
}

/// One engine to build with one TensorRT major version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSpec {
    pub tensorrt: u32,
    pub precision: Precision,
    /// The ONNX file, relative to the run folder.
    pub onnx: String,
    pub onnx_sha256: String,
    /// trtexec's arguments; `{engine}` stands for the engine's path, which has the cache key.
    pub trtexec: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub profile: Profile,
    pub timing_cache: String,
    pub engines: Vec<EngineSpec>,
    pub cache_key: String,
}

/// The engines each TensorRT version can build from the files there are.
pub fn plan(files: &OnnxFiles, profile: Profile) -> Plan {
    let mut engines = Vec::new();
    for version in VERSIONS {
        let sources = [
            (Precision::Fp32, files.fp32.as_ref()),
            // TensorRT 10 lowers fp32 ONNX to fp16 itself; 11 needs the network typed fp16.
            (
                Precision::Fp16,
                if version >= 11 {
                    files.fp16.as_ref()
                } else {
                    files.fp32.as_ref()
                },
            ),
            (Precision::Int8, files.int8.as_ref()),
        ];
        for (precision, source) in sources {
            let Some((onnx, sha)) = source else { continue };
            engines.push(EngineSpec {
                tensorrt: version,
                precision,
                onnx: onnx.clone(),
                onnx_sha256: sha.clone(),
                trtexec: trtexec_args(version, precision, onnx, &profile),
            });
        }
    }
    Plan {
        profile,
        timing_cache: TIMING_CACHE.into(),
        engines,
        cache_key: "sha256 of the ONNX file's sha256, the TensorRT version, the GPU compute capability, the profile and the precision; first 20 hex digits".into(),
    }
}

/// trtexec's arguments, run from the `tensorrt/` folder.
pub fn trtexec_args(
    version: u32,
    precision: Precision,
    onnx: &str,
    profile: &Profile,
) -> Vec<String> {
    let mut args = vec![
        format!("--onnx=../{onnx}"),
        format!("--minShapes={}", profile.shapes(profile.min)),
        format!("--optShapes={}", profile.shapes(profile.opt)),
        format!("--maxShapes={}", profile.shapes(profile.max)),
        "--saveEngine={engine}".to_string(),
        format!("--timingCacheFile={TIMING_CACHE}"),
    ];
    if version < 11 {
        match precision {
            Precision::Fp32 => {}
            Precision::Fp16 => args.push("--fp16".into()),
            Precision::Int8 => args.push("--int8".into()),
        }
    }
    args
}

/// The engine cache key (see the module's comment).
pub fn cache_key(
    onnx_sha256: &str,
    tensorrt_version: &str,
    compute_capability: &str,
    profile: &Profile,
    precision: Precision,
) -> String {
    let text = format!(
        "onnx={onnx_sha256}\ntensorrt={tensorrt_version}\ncompute_capability={compute_capability}\nprofile={}\nprecision={}\n",
        profile.describe(),
        precision.name()
    );
    hex::encode(Sha256::digest(text.as_bytes()))[..20].to_string()
}

/// Writes `tensorrt/plan.json` and `tensorrt/README.md` into the run folder.
pub fn write_plan(dir: &Path, plan: &Plan) -> Result<()> {
    let folder = dir.join(DIR);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    artefact::write_atomic(&folder.join(PLAN_FILE), &serde_json::to_vec_pretty(plan)?)?;
    artefact::write_atomic(&folder.join("README.md"), readme(plan).as_bytes())
}

fn readme(plan: &Plan) -> String {
    let mut text = format!(
        "# TensorRT engines\n\nBuilt on the machine that runs them (an engine is specific to the TensorRT version and \
         the GPU). `deepinsight export --model DIR --targets server --build` finds trtexec on PATH, computes \
         each engine's cache key ({}) and builds what is not cached into `engines/`. By hand, from this folder:\n\n\
         Profile: {}\n",
        plan.cache_key,
        plan.profile.describe()
    );
    for version in VERSIONS {
        text.push_str(&format!("\n## TensorRT {version}\n\n"));
        for engine in plan.engines.iter().filter(|e| e.tensorrt == version) {
            let engine_path = format!("engines/{}-KEY.plan", engine.precision.name());
            let args: Vec<String> = engine
                .trtexec
                .iter()
                .map(|a| a.replace("{engine}", &engine_path))
                .collect();
            text.push_str(&format!(
                "{}:\n\n    trtexec {}\n\n",
                engine.precision.name(),
                args.join(" ")
            ));
        }
    }
    text
}

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub trtexec: PathBuf,
    pub nvidia_smi: PathBuf,
}

impl Tools {
    /// trtexec and nvidia-smi from PATH (`TRTEXEC` may name trtexec), or what is missing.
    pub fn find() -> Result<Self> {
        let trtexec = std::env::var_os("TRTEXEC")
            .map(PathBuf::from)
            .or_else(|| on_path("trtexec"))
            .ok_or_else(|| anyhow!("trtexec was not found on PATH (nor in TRTEXEC): building engines needs TensorRT 10 or 11, whose trtexec is in its bin/ folder (e.g. /usr/src/tensorrt/bin); the plan and the commands are in tensorrt/"))?;
        let nvidia_smi = on_path("nvidia-smi").ok_or_else(|| {
            anyhow!("nvidia-smi was not found on PATH: building engines needs an NVIDIA GPU and its driver")
        })?;
        Ok(Self {
            trtexec,
            nvidia_smi,
        })
    }

    /// The TensorRT version as x.y.z, from trtexec's banner `[TensorRT v100300]`.
    pub fn tensorrt_version(&self) -> Result<String> {
        let out = Command::new(&self.trtexec)
            .arg("--help")
            .output()
            .with_context(|| format!("cannot run {}", self.trtexec.display()))?;
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        parse_version(&text).ok_or_else(|| {
            anyhow!(
                "{} printed no TensorRT version ([TensorRT vNNNNNN])",
                self.trtexec.display()
            )
        })
    }

    /// The first GPU's compute capability, e.g. 9.0.
    pub fn compute_capability(&self) -> Result<String> {
        let out = Command::new(&self.nvidia_smi)
            .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
            .output()
            .with_context(|| format!("cannot run {}", self.nvidia_smi.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let cc = text.lines().next().unwrap_or("").trim().to_string();
        if !out.status.success() || cc.is_empty() {
            bail!("nvidia-smi reported no GPU compute capability");
        }
        Ok(cc)
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub fn parse_version(text: &str) -> Option<String> {
    let start = text.find("[TensorRT v")? + "[TensorRT v".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n: u32 = digits.parse().ok()?;
    Some(format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltEngine {
    pub precision: Precision,
    pub file: String,
    pub key: String,
    pub cached: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub tensorrt_version: String,
    pub compute_capability: String,
    pub engines: Vec<BuiltEngine>,
}

/// Builds the plan's engines for the TensorRT found, reusing cached ones; writes
/// `tensorrt/build.json`. Each engine is written under a temporary name and renamed.
pub fn build(dir: &Path, plan: &Plan, tools: &Tools) -> Result<BuildReport> {
    let version = tools.tensorrt_version()?;
    let major: u32 = version.split('.').next().unwrap_or("0").parse()?;
    if !VERSIONS.contains(&major) {
        bail!("TensorRT {version} is not supported: the plan is for TensorRT 10 and 11");
    }
    let cc = tools.compute_capability()?;
    let folder = dir.join(DIR);
    std::fs::create_dir_all(folder.join("engines"))?;
    let mut engines = Vec::new();
    for spec in plan.engines.iter().filter(|e| e.tensorrt == major) {
        let key = cache_key(
            &spec.onnx_sha256,
            &version,
            &cc,
            &plan.profile,
            spec.precision,
        );
        let file = format!("engines/{}-{key}.plan", spec.precision.name());
        let started = Instant::now();
        let cached = folder.join(&file).is_file();
        if !cached {
            let partial = format!("engines/.{}-{key}.partial", spec.precision.name());
            let args: Vec<String> = spec
                .trtexec
                .iter()
                .map(|a| a.replace("{engine}", &partial))
                .collect();
            tracing::info!(
                precision = spec.precision.name(),
                "building a TensorRT engine"
            );
            let out = Command::new(&tools.trtexec)
                .args(&args)
                .current_dir(&folder)
                .output()
                .with_context(|| format!("cannot run {}", tools.trtexec.display()))?;
            if !out.status.success() || !folder.join(&partial).is_file() {
                let _ = std::fs::remove_file(folder.join(&partial));
                bail!(
                    "trtexec failed to build the {} engine from {}: {}",
                    spec.precision.name(),
                    spec.onnx,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .chain(String::from_utf8_lossy(&out.stdout).lines())
                        .filter(|l| l.contains("ERROR") || l.contains("FAILED"))
                        .take(5)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            std::fs::rename(folder.join(&partial), folder.join(&file))?;
        }
        engines.push(BuiltEngine {
            precision: spec.precision,
            file,
            key,
            cached,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let report = BuildReport {
        tensorrt_version: version,
        compute_capability: cc,
        engines,
    };
    artefact::write_atomic(
        &folder.join(BUILD_FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let batching = BatchConfig {
            max_batch_size: 16,
            preferred_batch_sizes: vec![4, 8],
            ..Default::default()
        };
        Profile::from_batching(&batching, [3, 32, 32])
    }

    fn files() -> OnnxFiles {
        OnnxFiles {
            fp32: Some(("model.onnx".into(), "a".repeat(64))),
            fp16: Some(("model-fp16.onnx".into(), "b".repeat(64))),
            int8: Some(("model-int8-tensorrt.onnx".into(), "c".repeat(64))),
        }
    }

    #[test]
    fn the_profile_is_one_the_largest_preferred_and_the_max_batch() {
        let p = profile();
        assert_eq!((p.min, p.opt, p.max), (1, 8, 16));
        let plain = Profile::from_batching(&BatchConfig::default(), [3, 32, 32]);
        assert_eq!((plain.min, plain.opt, plain.max), (1, 32, 32));
    }

    #[test]
    fn trtexec_commands_match_the_golden_ones() {
        let p = profile();
        let shapes = [
            "--minShapes=input:1x3x32x32",
            "--optShapes=input:8x3x32x32",
            "--maxShapes=input:16x3x32x32",
        ];
        let golden = |onnx: &str, flag: Option<&str>| {
            let mut args = vec![format!("--onnx=../{onnx}")];
            args.extend(shapes.map(String::from));
            args.push("--saveEngine={engine}".into());
            args.push("--timingCacheFile=timing.cache".into());
            args.extend(flag.map(String::from));
            args
        };
        let plan = plan(&files(), p);
        let find = |version: u32, precision: Precision| {
            plan.engines
                .iter()
                .find(|e| e.tensorrt == version && e.precision == precision)
                .unwrap()
        };
        assert_eq!(plan.engines.len(), 6);
        assert_eq!(
            find(10, Precision::Fp32).trtexec,
            golden("model.onnx", None)
        );
        assert_eq!(
            find(10, Precision::Fp16).trtexec,
            golden("model.onnx", Some("--fp16"))
        );
        assert_eq!(
            find(10, Precision::Int8).trtexec,
            golden("model-int8-tensorrt.onnx", Some("--int8"))
        );
        // TensorRT 11: no precision flags; the precision is in the ONNX types.
        assert_eq!(
            find(11, Precision::Fp16).trtexec,
            golden("model-fp16.onnx", None)
        );
        assert_eq!(
            find(11, Precision::Int8).trtexec,
            golden("model-int8-tensorrt.onnx", None)
        );
        assert_eq!(find(11, Precision::Int8).onnx_sha256, "c".repeat(64));
        // Without the INT8 model (no ONNX Runtime here), no INT8 engine is planned.
        let fewer = super::plan(
            &OnnxFiles {
                int8: None,
                ..files()
            },
            profile(),
        );
        assert!(fewer.engines.iter().all(|e| e.precision != Precision::Int8));
        assert_eq!(fewer.engines.len(), 4);
    }

    #[test]
    fn the_cache_key_is_golden_and_changes_with_each_input() {
        let p = profile();
        let sha = "a".repeat(64);
        let key = cache_key(&sha, "10.13.0", "9.0", &p, Precision::Int8);
        // Computed independently in a shell, as a deployment script would:
        // printf 'onnx=%s\ntensorrt=10.13.0\ncompute_capability=9.0\nprofile=input:1x3x32x32 input:8x3x32x32 input:16x3x32x32\nprecision=int8\n' aaa...a | sha256sum | cut -c1-20
        assert_eq!(key, "a57558e3c046d876a047");
        let mut other = p.clone();
        other.opt = 4;
        for changed in [
            cache_key(&"b".repeat(64), "10.13.0", "9.0", &p, Precision::Int8),
            cache_key(&sha, "10.13.1", "9.0", &p, Precision::Int8),
            cache_key(&sha, "10.13.0", "8.9", &p, Precision::Int8),
            cache_key(&sha, "10.13.0", "9.0", &other, Precision::Int8),
            cache_key(&sha, "10.13.0", "9.0", &p, Precision::Fp16),
        ] {
            assert_ne!(changed, key);
            assert_eq!(changed.len(), 20);
        }
    }

    #[test]
    fn versions_are_read_from_the_trtexec_banner() {
        let banner = "&&&& RUNNING TensorRT.trtexec [TensorRT v101300] [b12] # trtexec --help";
        assert_eq!(parse_version(banner).as_deref(), Some("10.13.0"));
        assert_eq!(
            parse_version("[TensorRT v110002]").as_deref(),
            Some("11.0.2")
        );
        assert_eq!(parse_version("trtexec usage"), None);
    }

    /// Stand-ins for trtexec and nvidia-smi: trtexec prints a TensorRT 10 banner, logs its
    /// arguments and writes the engine it is asked for (or fails when FAIL exists).
    fn fake_tools(dir: &Path) -> Tools {
        use std::os::unix::fs::PermissionsExt;
        let write = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let log = dir.join("calls.log");
        let fail = dir.join("FAIL");
        let trtexec = write(
            "trtexec",
            &format!(
                "echo '&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec'\n\
                 [ \"$1\" = --help ] && exit 0\n\
                 echo \"$@\" >> {log}\n\
                 [ -e {fail} ] && {{ echo '[E] [TRT] ERROR: parse failed'; exit 1; }}\n\
                 for a in \"$@\"; do case $a in --saveEngine=*) echo engine > \"${{a#--saveEngine=}}\";; esac; done",
                log = log.display(),
                fail = fail.display()
            ),
        );
        let nvidia_smi = write("nvidia-smi", "echo 9.0");
        Tools {
            trtexec,
            nvidia_smi,
        }
    }

    #[test]
    fn build_runs_trtexec_once_per_engine_then_reuses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let tools = fake_tools(dir.path());
        let run = dir.path().join("run");
        let plan = plan(&files(), profile());
        write_plan(&run, &plan).unwrap();
        let report = build(&run, &plan, &tools).unwrap();
        assert_eq!(report.tensorrt_version, "10.3.0");
        assert_eq!(report.compute_capability, "9.0");
        assert_eq!(report.engines.len(), 3, "the TensorRT 10 engines only");
        let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
        assert_eq!(calls.lines().count(), 3);
        assert!(calls.contains("--onnx=../model-int8-tensorrt.onnx") && calls.contains("--int8"));
        for engine in &report.engines {
            assert!(!engine.cached);
            let key = cache_key(
                &files_sha(engine.precision),
                "10.3.0",
                "9.0",
                &plan.profile,
                engine.precision,
            );
            assert_eq!(engine.key, key);
            assert!(run.join(DIR).join(&engine.file).is_file());
        }
        let saved: BuildReport =
            serde_json::from_slice(&std::fs::read(run.join(DIR).join(BUILD_FILE)).unwrap())
                .unwrap();
        assert_eq!(saved, report);

        let again = build(&run, &plan, &tools).unwrap();
        assert!(again.engines.iter().all(|e| e.cached));
        let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
        assert_eq!(calls.lines().count(), 3, "cached engines are not rebuilt");

        // A failed build names the engine and leaves no partial file.
        for engine in &report.engines {
            std::fs::remove_file(run.join(DIR).join(&engine.file)).unwrap();
        }
        std::fs::write(dir.path().join("FAIL"), "").unwrap();
        let err = build(&run, &plan, &tools).unwrap_err().to_string();
        assert!(
            err.contains("fp32 engine from model.onnx") && err.contains("parse failed"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(run.join(DIR).join("engines"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    fn files_sha(precision: Precision) -> String {
        match precision {
            Precision::Fp32 | Precision::Fp16 => "a".repeat(64),
            Precision::Int8 => "c".repeat(64),
        }
    }
}
