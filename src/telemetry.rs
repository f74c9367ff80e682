//! Log set-up: tracing-subscriber, JSON (default when stdout is not a terminal, as in a
//! container) or pretty; the filter comes from `RUST_LOG`, else `Gateway__LogLevel`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log lines the non-blocking writer holds before it drops new ones.
const LOG_QUEUE_LINES: usize = 32_768;

/// The writer thread batches queued lines into one write of up to this many bytes (it flushes
/// whenever the queue is empty), instead of one `write(2)` per line.
const LOG_WRITE_BUFFER: usize = 64 * 1024;

/// Keeps the background log writer alive; logs written before it is dropped are flushed.
pub type LogGuard = Option<tracing_appender::non_blocking::WorkerGuard>;

/// Installs the global subscriber; a second call is a no-op. Log lines go through a
/// non-blocking writer (a bounded queue drained by one thread), so a slow stdout never stalls
/// a request; keep the returned guard for the life of the process.
pub fn init(format: Option<LogFormat>, level: Option<&str>) -> LogGuard {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| level.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    // The queue's slots are allocated and written up front: the default 128,000 lines cost
    // 4 MiB of resident memory; 32,768 lines (1 MiB) is most of a second of access log at
    // full load.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(std::io::BufWriter::with_capacity(
            LOG_WRITE_BUFFER,
            std::io::stdout(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    installed.ok().map(|()| guard)
}
