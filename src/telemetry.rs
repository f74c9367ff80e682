//! Log and trace set-up. Logs: tracing-subscriber, JSON (default when stdout is not a
//! terminal, as in a container) or pretty; the filter comes from `RUST_LOG`, else
//! `Gateway__LogLevel`, else `info`. Traces: OpenTelemetry over OTLP when the standard `OTEL_*`
//! variables configure an endpoint ([`otlp`]), else none and no span work on the request path.

pub mod otlp;
pub mod spans;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

use crate::config::LogFormat;
pub use otlp::{OtlpSettings, SettingError};

/// Log lines the non-blocking writer holds before it drops new ones.
const LOG_QUEUE_LINES: usize = 32_768;

/// The writer thread batches queued lines into one write of up to this many bytes (it flushes
/// whenever the queue is empty), instead of one `write(2)` per line.
const LOG_WRITE_BUFFER: usize = 64 * 1024;

/// Keeps the background log writer and the span exporter alive; dropping it flushes both.
#[derive(Default)]
pub struct TelemetryGuard {
    /// Held for its `Drop`, which flushes the queued log lines.
    _log: Option<tracing_appender::non_blocking::WorkerGuard>,
    traces: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            // Exports what is still queued; the exporter's own timeout bounds the wait.
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: trace export did not flush at shutdown: {e}");
            }
        }
    }
}

/// Installs the global subscriber; a second call is a no-op. Log lines go through a
/// non-blocking writer (a bounded queue drained by one thread), so a slow stdout never stalls
/// a request; with `traces`, spans of target [`spans::TARGET`] go to the OTLP exporter (call
/// from inside the Tokio runtime). Keep the returned guard for the life of the process.
pub fn init(
    format: Option<LogFormat>,
    level: Option<&str>,
    traces: Option<&OtlpSettings>,
) -> Result<TelemetryGuard, opentelemetry_otlp::ExporterBuildError> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| level.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    // The exported spans never show in the log (the access log carries their trace id).
    let hide_spans = format!("{}=off", spans::TARGET);
    let filter = EnvFilter::try_new(format!("{filter},{hide_spans}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{hide_spans}")));
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    // The queue's slots are allocated and written up front: the default 128,000 lines cost
    // 4 MiB of resident memory; 32,768 lines (1 MiB) is most of a second of access log at
    // full load.
    let (writer, log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(std::io::BufWriter::with_capacity(
            LOG_WRITE_BUFFER,
            std::io::stdout(),
        ));
    let Some(traces) = traces else {
        // Without export: one global filter, as before traces existed.
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
        return Ok(TelemetryGuard {
            _log: installed.ok().map(|()| log_guard),
            traces: None,
        });
    };
    let provider = traces.provider()?;
    // Each layer filters for itself: the log keeps its level, the exporter sees only its spans.
    // Without source locations, thread names or busy/idle timings: attributes nobody asked for,
    // each costing work per span.
    let exported = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("halo-gateway"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(spans::TARGET, tracing::Level::INFO));
    let log = tracing_subscriber::fmt::layer().with_writer(writer);
    let log = match format {
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => log.compact().with_filter(filter).boxed(),
    };
    let installed = Registry::default().with(log).with(exported).try_init();
    if installed.is_err() {
        let _ = provider.shutdown();
        return Ok(TelemetryGuard::default());
    }
    spans::set_exporting(traces.sampler.clone());
    Ok(TelemetryGuard {
        _log: Some(log_guard),
        traces: Some(provider),
    })
}
