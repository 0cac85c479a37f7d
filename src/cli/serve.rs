//! `deepinsight serve`: trained runs over HTTP until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use crate::serve::backend::BackendKind;
use crate::serve::{ModelSpec, ServeConfig, Server};
use anyhow::Result;

use super::set;

#[derive(clap::Args)]
pub struct Args {
    /// DIR or NAME=DIR of a run folder (repeatable); the name defaults to the folder's.
    #[arg(long = "model")]
    models: Vec<String>,
    /// A serve file (TOML: addr, max_body_bytes, [batching], [[model]] name/dir/batching);
    /// --model entries are added to its models.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one). Default 127.0.0.1:8080.
    #[arg(long)]
    addr: Option<String>,
    /// Request bodies larger than this are refused with 413.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// What computes predictions: burn (model.bpk, default), onnx (ONNX Runtime on
    /// model.onnx) or onnx-int8 (ONNX Runtime on model-int8.onnx, the fastest on CPU); the
    /// ONNX ones need `deepinsight export --targets server` first.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    #[command(flatten)]
    batching: Batching,
    #[command(flatten)]
    connections: Connections,
}

/// Overrides of the serve file's `[batching]`.
#[derive(clap::Args)]
struct Batching {
    /// Most samples per batch (1 turns batching off).
    #[arg(long)]
    max_batch_size: Option<usize>,
    /// Longest a request waits for companions, from its arrival.
    #[arg(long)]
    max_queue_delay_ms: Option<u64>,
    /// Batch sizes that leave at once, e.g. 8,16.
    #[arg(long, value_delimiter = ',')]
    preferred_batch_sizes: Option<Vec<usize>>,
    /// Most samples waiting; beyond it requests get 503 with Retry-After.
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Batches computed at once, one worker thread each.
    #[arg(long)]
    max_concurrent_batches: Option<usize>,
    /// Priority levels (1 = most urgent; requests default to the last).
    #[arg(long)]
    priority_levels: Option<u8>,
    /// Deadline of requests that set none; past it the answer is 504.
    #[arg(long)]
    request_timeout_ms: Option<u64>,
}

/// Overrides of the serve file's `[connections]`.
#[derive(clap::Args)]
struct Connections {
    /// A request's headers must arrive within this, and an idle keep-alive connection is
    /// closed after it (default 30000).
    #[arg(long)]
    header_timeout_ms: Option<u64>,
    /// A request's body must arrive within this, else 408 (default 60000).
    #[arg(long)]
    body_timeout_ms: Option<u64>,
    /// Open connections at most; more wait until one closes (default 1024).
    #[arg(long)]
    max_connections: Option<usize>,
}

pub fn execute(args: Args) -> Result<()> {
    let mut serve = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    set(&mut serve.backend, args.backend);
    set(&mut serve.addr, args.addr);
    set(&mut serve.max_body_bytes, args.max_body_bytes);
    let (b, from) = (&mut serve.batching, args.batching);
    set(&mut b.max_batch_size, from.max_batch_size);
    set(&mut b.max_queue_delay_ms, from.max_queue_delay_ms);
    set(&mut b.preferred_batch_sizes, from.preferred_batch_sizes);
    set(&mut b.queue_capacity, from.queue_capacity);
    set(&mut b.max_concurrent_batches, from.max_concurrent_batches);
    set(&mut b.priority_levels, from.priority_levels);
    set(&mut b.request_timeout_ms, from.request_timeout_ms);
    let (c, from) = (&mut serve.connections, args.connections);
    set(&mut c.header_timeout_ms, from.header_timeout_ms);
    set(&mut c.body_timeout_ms, from.body_timeout_ms);
    set(&mut c.max_connections, from.max_connections);
    for m in &args.models {
        serve.models.push(ModelSpec::parse(m)?);
    }
    serve_until_signal(serve)
}

fn serve_until_signal(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        // Scripts (and the tests) read the bound address from this line.
        crate::outln!("listening on http://{}", server.addr);
        use std::io::Write;
        std::io::stdout().flush()?;
        server.run_until_signal().await?;
        crate::outln!("stopped");
        Ok(())
    })
}
