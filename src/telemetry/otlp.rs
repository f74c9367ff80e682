//! OpenTelemetry trace export over OTLP, configured by the standard environment variables
//! (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>):
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turn it on,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`), `OTEL_SERVICE_NAME`
//! (default `halo-gateway`), `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`,
//! `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it
//! off. The exporter reads the endpoint, `OTEL_EXPORTER_OTLP_HEADERS` and `..._TIMEOUT` itself,
//! and the batch processor `OTEL_BSP_*`.
//!
//! Spans are batched and exported by a task on the runtime, never on the request path.

use opentelemetry::KeyValue;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "halo-gateway";

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        })
    }
}

/// Trace export settings read from the environment.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub protocol: Protocol,
    /// The endpoint variable that turned export on, and its value (for start-up messages).
    pub endpoint: (&'static str, String),
    pub sampler: Sampler,
    /// The sampler as configured, for start-up messages.
    pub sampler_text: String,
}

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SettingError {
    pub name: &'static str,
    pub message: String,
}

fn invalid(name: &'static str, message: impl Into<String>) -> SettingError {
    SettingError {
        name,
        message: message.into(),
    }
}

impl OtlpSettings {
    /// The settings from `var` (the process environment in production); `None` when trace
    /// export is not configured or is switched off.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, SettingError> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").map(|v| v.to_ascii_lowercase()) {
            None => {}
            Some(v) if v == "otlp" => {}
            Some(v) if v == "none" => return Ok(None),
            Some(v) => {
                return Err(invalid(
                    "OTEL_TRACES_EXPORTER",
                    format!("'{v}' is not supported (use otlp or none)"),
                ));
            }
        }
        let endpoint = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)));
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        match url::Url::parse(&endpoint.1) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(invalid(
                    endpoint.0,
                    format!("'{}' is not an http(s) URL", endpoint.1),
                ));
            }
        }
        let protocol = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)));
        let protocol = match protocol {
            None => Protocol::HttpProtobuf,
            Some((_, v)) if v == "http/protobuf" => Protocol::HttpProtobuf,
            Some((_, v)) if v == "grpc" => Protocol::Grpc,
            Some((name, v)) => {
                return Err(invalid(
                    name,
                    format!("'{v}' is not supported (use http/protobuf or grpc)"),
                ));
            }
        };
        let (sampler, sampler_text) = sampler(
            var("OTEL_TRACES_SAMPLER").as_deref(),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?;
        Ok(Some(Self {
            protocol,
            endpoint: (endpoint.0, endpoint.1),
            sampler,
            sampler_text,
        }))
    }

    /// Builds the tracer provider: the OTLP exporter behind a batch processor on the current
    /// Tokio runtime (call from inside it).
    pub fn provider(&self) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
        let exporter = match self.protocol {
            Protocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()?,
            Protocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .build()?,
        };
        let processor = BatchSpanProcessor::builder(exporter, Tokio).build();
        Ok(SdkTracerProvider::builder()
            .with_span_processor(processor)
            // Requests are sampled before their spans are built (`spans::server_trace`), so
            // every span that reaches the SDK is one to record.
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(resource())
            .build())
    }
}

/// The SDK's resource (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, telemetry.sdk.*) with
/// `service.name` defaulting to halo-gateway instead of `unknown_service`.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_attribute(KeyValue::new("service.name", DEFAULT_SERVICE_NAME))
            .build()
    }
}

/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`; the default is `parentbased_always_on`.
fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<(Sampler, String), SettingError> {
    let ratio = || -> Result<f64, SettingError> {
        let Some(arg) = arg else { return Ok(1.0) };
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(
                "OTEL_TRACES_SAMPLER_ARG",
                format!("'{arg}' is not a sampling ratio between 0 and 1"),
            )),
        }
    };
    let name = name.unwrap_or("parentbased_always_on").to_ascii_lowercase();
    let sampler = match name.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        other => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "'{other}' is not supported (use always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio)"
                ),
            ));
        }
    };
    let text = if name.ends_with("traceidratio") {
        format!("{name} {}", ratio()?)
    } else {
        name
    };
    Ok((sampler, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<OtlpSettings>, SettingError> {
        OtlpSettings::from_env(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn export_is_off_without_an_endpoint_or_when_switched_off() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(settings(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(settings(&[endpoint]).unwrap().is_some());
        assert!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])
                .unwrap()
                .is_none()
        );
        assert!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn protocol_endpoint_and_sampler_are_read_with_the_traces_variables_first() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b/v1/traces"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(
            s.endpoint,
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://b/v1/traces".into()
            )
        );
        assert_eq!(s.sampler_text, "parentbased_traceidratio 0.01");
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.sampler_text, "parentbased_always_on");
    }

    /// The exporter reads the endpoint itself; building needs the Tokio runtime (the batch
    /// task), and shutting down blocks until that task answers, so off the runtime's threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn both_protocols_build_a_provider_that_shuts_down() {
        for protocol in ["http/protobuf", "grpc"] {
            let s = settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ])
            .unwrap()
            .unwrap();
            let provider = s.provider().expect(protocol);
            tokio::task::spawn_blocking(move || provider.shutdown())
                .await
                .unwrap()
                .expect(protocol);
        }
    }

    #[test]
    fn mistakes_name_their_variable() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        for (vars, name) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
        ] {
            let error = settings(&vars).unwrap_err();
            assert_eq!(error.name, name, "{vars:?}");
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }
}
